/**
 * The shape checks every reader of untrusted JSON (a spec, a marker, a snapshot, a Lease
 * annotation) starts from, so each says what it expects and never re-writes what an
 * object is.
 */

/** A plain JSON object (not null, not an array). */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON object whose every value is a string. */
export function isStringRecord(v: unknown): v is Record<string, string> {
  return isRecord(v) && Object.values(v).every((x) => typeof x === 'string');
}

/** A string Date.parse reads as a time (ISO 8601 as written by toISOString). */
export function isTimeString(v: unknown): v is string {
  return typeof v === 'string' && !Number.isNaN(Date.parse(v));
}
