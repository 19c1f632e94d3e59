/** Limits no test case reaches unless it lowers one of them (the admission tests' base). */
import type { AdmissionLimits } from './admission.ts';

export const OPEN_LIMITS: AdmissionLimits = {
  maxActive: 100,
  maxActivePerClient: 100,
  maxActivePerSubnet: 100,
  maxPending: 100,
  maxPendingPerSubnet: 100,
  memoryBudgetBytes: 1 << 30,
};
