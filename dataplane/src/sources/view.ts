/**
 * The client's view: sources asked in order, first hit wins. A refusal or a source that is
 * not ready stops the chain (nothing is served); a source that is unavailable is skipped
 * and reported.
 */
import type { FileSource, OpenResult, ViewRequest } from './source.ts';

export interface ViewResolution {
  result: OpenResult;
  /** Sources that could not answer, with why (e.g. an NBD disk that is down). */
  unavailable: { source: string; reason: string }[];
}

export async function resolveInView(
  sources: readonly FileSource[],
  request: ViewRequest,
  signal: AbortSignal,
): Promise<ViewResolution> {
  const unavailable: { source: string; reason: string }[] = [];
  for (const source of sources) {
    if (signal.aborted) break;
    let r: OpenResult;
    try {
      r = await source.open(request, signal);
    } catch (err) {
      r = { status: 'unavailable', reason: (err as Error).message };
    }
    if (r.status === 'found' || r.status === 'refused' || r.status === 'not-ready')
      return { result: r, unavailable };
    if (r.status === 'unavailable') unavailable.push({ source: source.name, reason: r.reason });
  }
  return { result: { status: 'not-found' }, unavailable };
}
