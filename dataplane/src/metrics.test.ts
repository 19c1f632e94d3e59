import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createDataplaneMetrics } from './metrics.ts';

test('the dataplane exposes rtftp_build_info and the standard process metrics', async () => {
  const text = await createDataplaneMetrics().registry.metrics();
  assert.match(
    text,
    /^rtftp_build_info\{component="dataplane",version="[^"]+",revision="[^"]+",node_version="v\d+[^"]*"\} 1$/m,
  );
  assert.match(text, /^process_resident_memory_bytes \d+/m);
});
