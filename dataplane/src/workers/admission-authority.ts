/**
 * Admission in worker mode: the one TransferAdmission of the process, on the main thread,
 * answering the workers' requests by message. Its limits stay global — per address, per
 * /24 and /64, overall, the memory budget and the pending pool — exactly as in one process:
 * the same rule, the same module, the same synchronous check-and-reserve, only a message
 * away (docs/performance.md, "Admission across workers"). A worker's ticket is named by a number;
 * the authority keeps the tickets of each worker, so the tickets of a worker that died are
 * released with it.
 */
import { TransferAdmission } from '../admission/admission.ts';
import type {
  AdmissionLimits,
  ProveResult,
  ProvenAdmission,
  Ticket,
} from '../admission/admission.ts';
import type { AdmitAnswer } from './messages.ts';

export interface TicketRef {
  worker: number;
  ticket: number;
}

export class AdmissionAuthority {
  private readonly admission: TransferAdmission<TicketRef>;
  private readonly tickets = new Map<number, Map<number, Ticket<TicketRef>>>();
  private nextTicket = 1;

  constructor(
    limits: AdmissionLimits,
    /** A pending ticket displaced to make room: the worker holding it ends that request. */
    private readonly onEvicted: (ref: TicketRef) => void,
  ) {
    this.admission = new TransferAdmission(limits);
  }

  get pending(): number {
    return this.admission.pending;
  }
  get memoryReserved(): number {
    return this.admission.memoryReserved;
  }
  /** For HTTP boot on the main thread: its clients are proven, and counted here too. */
  get proven(): ProvenAdmission {
    return this.admission;
  }
  get memoryBudget(): number {
    return this.admission.limits.memoryBudgetBytes;
  }

  request(worker: number, client: string): AdmitAnswer {
    const ref = { worker, ticket: this.nextTicket++ };
    const r = this.admission.request(client, ref);
    if (!r.ok) return r;
    this.ticketsOf(worker).set(ref.ticket, r.ticket);
    for (const victim of r.evicted) {
      // Released by the eviction itself: the worker forgets it without a word back.
      this.tickets.get(victim.worker)?.delete(victim.ticket);
      this.onEvicted(victim);
    }
    return { ok: true, ticket: ref.ticket, subnet: r.ticket.subnet };
  }

  prove(worker: number, ticket: number, bytes: number): ProveResult {
    const t = this.tickets.get(worker)?.get(ticket);
    if (!t) return { ok: false, reason: 'server-busy' };
    return this.admission.prove(t, bytes);
  }

  release(worker: number, ticket: number): void {
    const mine = this.tickets.get(worker);
    const t = mine?.get(ticket);
    if (!t) return;
    mine!.delete(ticket);
    this.admission.release(t);
  }

  /** A worker died: everything it held is free again. */
  releaseWorker(worker: number): void {
    for (const t of this.tickets.get(worker)?.values() ?? []) this.admission.release(t);
    this.tickets.delete(worker);
  }

  private ticketsOf(worker: number): Map<number, Ticket<TicketRef>> {
    let m = this.tickets.get(worker);
    if (!m) this.tickets.set(worker, (m = new Map()));
    return m;
  }
}
