/**
 * A worker's side of admission: the AdmissionDesk the worker's TftpServer uses, each call a
 * message to the authority on the main thread (admission-authority.ts). An answer that
 * does not come within `timeoutMs` (a main thread stuck that long) counts as "server busy":
 * a transfer never waits on admission forever, and a ticket granted after its request gave
 * up is released at once.
 */
import type { ProveResult, RequestResult, Ticket } from '../admission/admission.ts';
import type { AdmissionDesk } from '../tftp/server.ts';
import type { AdmitAnswer, FromWorker, ToWorker } from './messages.ts';

interface RemoteTicket<T> extends Ticket<T> {
  readonly id: number;
}

export class RemoteAdmission<T> implements AdmissionDesk<T> {
  private nextId = 1;
  private readonly waiting = new Map<number, (answer: AdmitAnswer | ProveResult | null) => void>();
  private readonly tickets = new Map<number, RemoteTicket<T>>();
  private evictedHandler: ((data: T) => void) | undefined;

  constructor(
    private readonly post: (m: FromWorker) => void,
    private readonly timeoutMs = 5000,
  ) {}

  request(client: string, data: T): Promise<RequestResult<T>> {
    const id = this.nextId++;
    this.post({ type: 'admit', id, client });
    return this.answer<AdmitAnswer>(id).then((a) => {
      if (!a) return { ok: false, reason: 'server-busy' };
      if (!a.ok) return a;
      const ticket: RemoteTicket<T> = {
        id: a.ticket,
        client,
        subnet: a.subnet,
        data,
        state: 'pending',
        bytes: 0,
      };
      this.tickets.set(a.ticket, ticket);
      return { ok: true, ticket, evicted: [] };
    });
  }

  prove(ticket: Ticket<T>, bytes: number): Promise<ProveResult> {
    const t = ticket as RemoteTicket<T>;
    if (!this.tickets.has(t.id)) return Promise.resolve({ ok: false, reason: 'server-busy' });
    const id = this.nextId++;
    this.post({ type: 'prove', id, ticket: t.id, bytes });
    return this.answer<ProveResult>(id).then((a) => a ?? { ok: false, reason: 'server-busy' });
  }

  release(ticket: Ticket<T>): void {
    const t = ticket as RemoteTicket<T>;
    if (!this.tickets.delete(t.id)) return;
    this.post({ type: 'release', ticket: t.id });
  }

  onEvicted(handler: (data: T) => void): void {
    this.evictedHandler = handler;
  }

  /** Takes the authority's messages; false for any other. */
  handle(m: ToWorker): boolean {
    if (m.type === 'admitted' || m.type === 'proved') {
      const resolve = this.waiting.get(m.id);
      if (resolve) resolve(m.answer);
      else if (m.type === 'admitted' && m.answer.ok)
        this.post({ type: 'release', ticket: m.answer.ticket }); // its request gave up
      return true;
    }
    if (m.type === 'evicted') {
      const t = this.tickets.get(m.ticket);
      if (t) {
        this.tickets.delete(m.ticket);
        this.evictedHandler?.(t.data);
      }
      return true;
    }
    return false;
  }

  private answer<A>(id: number): Promise<A | null> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(null);
      }, this.timeoutMs);
      this.waiting.set(id, (a) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(a as A);
      });
    });
  }
}
