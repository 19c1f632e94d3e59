import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterChain } from './fat-chain.ts';

function chainOf(clusters: number[]): ClusterChain {
  const chain = new ClusterChain(clusters[0]!);
  for (const c of clusters.slice(1)) chain.append(c);
  return chain;
}

test('keeps consecutive clusters as runs and finds the cluster of each position', () => {
  const chain = chainOf([10, 11, 12, 500, 501, 7]);
  assert.equal(chain.length, 6);
  assert.deepEqual(
    Array.from({ length: 6 }, (_, i) => chain.at(i)),
    [10, 11, 12, 500, 501, 7],
  );
  assert.equal(chain.at(6), undefined);
  assert.equal(chain.runLength(1), 2);
  assert.equal(chain.runLength(3), 2);
  assert.equal(chain.lastCluster, 7);
});

for (const [name, clusters, back] of [
  ['to its first cluster', [100, 101, 102], 100],
  ['into the middle of a long run', [100, 101, 102, 103, 104, 300], 102],
  ['to the end of a run that grew into the next bucket of 64', [60, 61, 62, 63, 64, 65, 9], 65],
  ['to a scattered cluster', [5, 900, 17, 4000], 900],
  ['to the cluster before it (a run growing onto a later one)', [50, 10, 11], 50],
] as const) {
  test(`a chain that loops back ${name} is corrupt`, () => {
    const chain = chainOf([...clusters]);
    assert.throws(() => chain.append(back), { reason: 'corrupt', message: /loops back/ });
  });
}

test('a run may grow up to a cluster just below an earlier run, never into it', () => {
  const chain = chainOf([20, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  assert.equal(chain.runLength(1), 10);
  assert.throws(() => chain.append(20), /loops back to cluster 20/);
});

test('a scattered chain of 200,000 clusters builds in linear time', () => {
  // The sorted-array version took 155 s for this on the loaded CI machine, 2.4 s for 40k;
  // now ≈ 0.5 s. The bound is 20 times that, for a machine shared by other jobs.
  const started = performance.now();
  const chain = new ClusterChain(2);
  for (let i = 1; i < 200_000; i++) chain.append(2 + ((i * 7919) % 1_000_003) * 2);
  const ms = performance.now() - started;
  assert.equal(chain.length, 200_000);
  assert.equal(chain.runLength(0), 1);
  assert.ok(ms < 10_000, `took ${ms.toFixed(0)} ms`);
});
