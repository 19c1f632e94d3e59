/**
 * Kubernetes label selectors (metav1.LabelSelector) evaluated against a set of labels, as
 * the API server evaluates them: every matchLabels pair and every matchExpressions term
 * must hold; an empty selector matches everything. Used for a BootNetwork's
 * `namespaces.namespaceSelector`.
 */

export interface LabelSelectorRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

const OPERATORS = new Set(['In', 'NotIn', 'Exists', 'DoesNotExist']);

/** Problems with a selector's shape (the API server's own checks), by field. */
export function labelSelectorProblems(sel: unknown, field: string): string[] {
  if (typeof sel !== 'object' || sel === null || Array.isArray(sel))
    return [`${field}: must be an object`];
  const s = sel as Record<string, unknown>;
  const problems: string[] = [];
  const ml = s.matchLabels;
  if (ml !== undefined) {
    if (typeof ml !== 'object' || ml === null || Array.isArray(ml))
      problems.push(`${field}.matchLabels: must be a map of strings`);
    else
      for (const [k, v] of Object.entries(ml))
        if (typeof v !== 'string') problems.push(`${field}.matchLabels.${k}: must be a string`);
  }
  const me = s.matchExpressions;
  if (me !== undefined) {
    if (!Array.isArray(me)) problems.push(`${field}.matchExpressions: must be a list`);
    else
      me.forEach((r: unknown, i) => {
        const f = `${field}.matchExpressions[${i}]`;
        const req = (typeof r === 'object' && r !== null ? r : {}) as Record<string, unknown>;
        if (typeof req.key !== 'string' || !req.key) problems.push(`${f}.key: required`);
        if (!OPERATORS.has(req.operator as string))
          problems.push(`${f}.operator: must be In, NotIn, Exists or DoesNotExist`);
        const values = req.values;
        const list = Array.isArray(values) && values.every((v) => typeof v === 'string');
        if (values !== undefined && !list) problems.push(`${f}.values: must be a list of strings`);
        const n = Array.isArray(values) ? values.length : 0;
        if ((req.operator === 'In' || req.operator === 'NotIn') && n === 0)
          problems.push(`${f}.values: must not be empty for ${String(req.operator)}`);
        if ((req.operator === 'Exists' || req.operator === 'DoesNotExist') && n > 0)
          problems.push(`${f}.values: must be empty for ${String(req.operator)}`);
      });
  }
  return problems;
}

/** Whether `labels` satisfy `sel` (a selector already free of problems). */
export function matchesLabelSelector(
  sel: LabelSelector,
  labels: Readonly<Record<string, string>>,
): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const r of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    const values = r.values ?? [];
    if (r.operator === 'In' && !(has && values.includes(value!))) return false;
    if (r.operator === 'NotIn' && has && values.includes(value!)) return false;
    if (r.operator === 'Exists' && !has) return false;
    if (r.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}
