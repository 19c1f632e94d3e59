/**
 * Merges the conditions render() wants with those an object carries: lastTransitionTime
 * moves only when a condition's status flips, and "changed" is false when a status write
 * would not change anything, which is what keeps the operator from status write storms.
 */
import type { Condition, BootClientStatus } from '../../../common/src/bootclient.ts';
import type { DesiredStatus } from './render.ts';

/**
 * A transition worth an Event: reason names the Event (Accepted, Invalid, NotPermitted,
 * Rendered, Conflict; Ready when Ready turns True, NotReady when it turns False again).
 */
export interface ConditionEvent {
  reason: 'Accepted' | 'Invalid' | 'NotPermitted' | 'Rendered' | 'Conflict' | 'Ready' | 'NotReady';
  type: 'Normal' | 'Warning';
  message: string;
}

export interface MergedStatus {
  status: Required<BootClientStatus>;
  changed: boolean;
  events: ConditionEvent[];
}

function eventOf(c: Condition, prev: Condition | undefined): ConditionEvent | null {
  // Ready's message moves with every node (served by N/M): an Event only when it flips,
  // and none for the False every new BootClient starts with.
  if (c.type === 'Ready') {
    if (prev?.status === c.status) return null;
    if (c.status === 'True') return { reason: 'Ready', type: 'Normal', message: c.message };
    return prev ? { reason: 'NotReady', type: 'Warning', message: c.message } : null;
  }
  if (c.type === 'Accepted')
    return c.status === 'True'
      ? { reason: 'Accepted', type: 'Normal', message: c.message }
      : {
          reason: c.reason === 'NotPermitted' ? 'NotPermitted' : 'Invalid',
          type: 'Warning',
          message: c.message,
        };
  if (c.type === 'Rendered' && c.status === 'True')
    return { reason: 'Rendered', type: 'Normal', message: c.message };
  if (c.type === 'Conflict' && c.status === 'True')
    return { reason: 'Conflict', type: 'Warning', message: c.message };
  return null;
}

export function mergeStatus(
  current: BootClientStatus | undefined,
  desired: DesiredStatus,
  now: string,
): MergedStatus {
  const old = new Map((current?.conditions ?? []).map((c) => [c.type, c]));
  const events: ConditionEvent[] = [];
  let changed =
    current?.observedGeneration !== desired.observedGeneration ||
    (current?.conditions ?? []).length !== desired.conditions.length;
  const conditions = desired.conditions.map((d): Condition => {
    const prev = old.get(d.type);
    const flipped = prev?.status !== d.status;
    const next: Condition = {
      type: d.type,
      status: d.status,
      observedGeneration: desired.observedGeneration,
      lastTransitionTime: flipped || !prev ? now : prev.lastTransitionTime,
      reason: d.reason,
      message: d.message,
    };
    if (
      !prev ||
      flipped ||
      prev.reason !== d.reason ||
      prev.message !== d.message ||
      prev.observedGeneration !== desired.observedGeneration
    ) {
      changed = true;
      // An Event for news, not for a generation bump that changed nothing.
      if (flipped || prev?.reason !== d.reason) {
        const e = eventOf(next, prev);
        if (e) events.push(e);
      }
    }
    return next;
  });
  return {
    status: { observedGeneration: desired.observedGeneration, conditions },
    changed,
    events,
  };
}
