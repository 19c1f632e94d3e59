// A node:test reporter that prints one closing line, e.g. "node22: 412 passed, 0 failed, 3 skipped",
// so each run (Node 20, then Node 22 in scripts/test.sh) has its own summary in CI's output.
// The label is RTFTP_TEST_LABEL, else node<major>. Cancelled tests (timeouts) count as failed.
const label = process.env.RTFTP_TEST_LABEL || `node${process.versions.node.split('.')[0]}`;

export default async function* summary(source) {
  // The runner's own totals: diagnostics at nesting 0 after the last file ("pass 12", ...).
  const totals = {};
  for await (const event of source) {
    if (event.type !== 'test:diagnostic' || event.data.nesting !== 0) continue;
    const m = /^(tests|pass|fail|cancelled|skipped|todo) (\d+)$/.exec(event.data.message);
    if (m) totals[m[1]] = Number(m[2]);
  }
  const n = (key) => totals[key] ?? 0;
  yield `${label}: ${n('pass')} passed, ${n('fail') + n('cancelled')} failed, ${n('skipped')} skipped\n`;
}
