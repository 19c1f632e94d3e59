import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createOperatorMetrics } from './metrics.ts';

test('process metrics are the standard unprefixed names', async () => {
  const text = await createOperatorMetrics().registry.metrics();
  assert.match(text, /^process_resident_memory_bytes \d+/m);
  assert.match(text, /^nodejs_heap_size_used_bytes \d+/m);
  assert.doesNotMatch(text, /rtftp_operator_(process|nodejs)_/);
});

test('the controller exposes its own metrics and none of the sidecar', async () => {
  const text = await createOperatorMetrics(undefined, false).registry.metrics();
  assert.match(
    text,
    /^rtftp_build_info\{component="operator",version="[^"]+",revision="[^"]+",node_version="v\d+[^"]*"\} 1$/m,
  );
  assert.match(text, /^rtftp_operator_leader 0$/m);
  assert.match(text, /^rtftp_operator_rendered_configs 0$/m);
  assert.doesNotMatch(text, /rtftp_operator_sync_/);
});

test('the sync sidecar exposes its own metrics and none of the controller', async () => {
  const metrics = createOperatorMetrics(undefined, false, 'sync');
  // Setting an unregistered controller gauge is harmless: it is simply not exposed.
  metrics.leader.set(1);
  const text = await metrics.registry.metrics();
  assert.match(text, /^rtftp_build_info\{component="sync",/m);
  assert.match(text, /^rtftp_operator_sync_files 0$/m);
  assert.match(text, /^rtftp_operator_sync_errors_total 0$/m);
  assert.match(text, /^# TYPE rtftp_operator_watch_restarts_total counter$/m);
  for (const name of ['leader', 'rendered_configs', 'bootclients', 'reconciles_total'])
    assert.doesNotMatch(text, new RegExp(`rtftp_operator_${name}\\b`));
});
