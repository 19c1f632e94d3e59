import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { helmMissingReason, helmWithValues } from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped values schema tests: ${skip}`);

/** Values a user could plausibly get wrong, and the line helm must print for each. */
const BAD_VALUES: [string, object, RegExp][] = [
  [
    'port out of range',
    { dataplane: { port: 70000 } },
    /dataplane\.port: Must be less than or equal to 65535/,
  ],
  [
    'port as a string',
    { dataplane: { port: '69' } },
    /dataplane\.port: Invalid type\. Expected: integer, given: string/,
  ],
  [
    'misspelt key',
    { dataplane: { prot: 69 } },
    /dataplane: Additional property prot is not allowed/,
  ],
  [
    'unknown kvm mode',
    { dataplane: { kvm: { mode: 'kvm' } } },
    /dataplane\.kvm\.mode must be one of the following: "none", "devicePlugin", "hostPath"/,
  ],
  [
    'unknown bind strategy',
    { dataplane: { bindStrategy: 'setuid' } },
    /dataplane\.bindStrategy must be one of the following: "fileCapability", "root"/,
  ],
  [
    'PVC root without a claim',
    { dataplane: { root: { type: 'persistentVolumeClaim' } } },
    /dataplane\.root\.persistentVolumeClaim\.claimName: String length must be greater than or equal to 1/,
  ],
  [
    'relative hostPath',
    { dataplane: { root: { hostPath: { path: 'srv/tftp' } } } },
    /dataplane\.root\.hostPath\.path: Does not match pattern '\^\/'/,
  ],
  [
    'zero idle timeout',
    { dataplane: { idleTimeout: 0 } },
    /dataplane\.idleTimeout: Must be greater than or equal to 1/,
  ],
  [
    'bad scrape interval',
    { metrics: { podMonitor: { interval: '30 seconds' } } },
    /metrics\.podMonitor\.interval: Does not match pattern/,
  ],
  [
    'bad log level',
    { operator: { logLevel: 'verbose' } },
    /operator\.logLevel must be one of the following/,
  ],
  [
    'bad memory quantity',
    { dataplane: { resources: { limits: { memory: 'lots' } } } },
    /dataplane\.resources\.limits\.memory/,
  ],
  // Day one on a bare-metal cluster (issue 14).
  [
    'a listen term with a space',
    { dataplane: { listen: ['192.168.1.0/24 eth1'] } },
    /dataplane\.listen\.0: Does not match pattern/,
  ],
  [
    'a status-allow entry that is not a CIDR',
    { dataplane: { statusAllow: ['mgmt-net'] } },
    /dataplane\.statusAllow\.0: Does not match pattern/,
  ],
  [
    'an interface pattern longer than Linux allows',
    { dataplane: { listenSkipInterfaces: ['a-very-long-interface-name'] } },
    /dataplane\.listenSkipInterfaces\.0: Does not match pattern/,
  ],
  [
    'a probe port out of range',
    { dataplane: { metrics: { probePort: 0 } } },
    /dataplane\.metrics\.probePort: Must be greater than or equal to 1/,
  ],
  [
    'a root uid for the non-root containers',
    { securityContext: { runAsUser: 0 } },
    /securityContext\.runAsUser: Must be greater than or equal to 1/,
  ],
  [
    'an extra volume mount without a path',
    { dataplane: { extraVolumeMounts: [{ name: 'nbd' }] } },
    /dataplane\.extraVolumeMounts\.0: mountPath is required/,
  ],
  [
    'crds.install as a string',
    { crds: { install: 'yes' } },
    /crds\.install: Invalid type\. Expected: boolean, given: string/,
  ],
  [
    'a PDB minAvailable that is no number or percentage',
    { operator: { podDisruptionBudget: { minAvailable: 'half' } } },
    /operator\.podDisruptionBudget\.minAvailable/,
  ],
  [
    'requireSnapshot misspelt',
    { dataplane: { configSync: { requireSnapshots: true } } },
    /Additional property requireSnapshots is not allowed/,
  ],
  [
    'failure ratio above 1',
    { metrics: { prometheusRule: { transferFailureRatio: 5 } } },
    /transferFailureRatio: Must be less than or equal to 1/,
  ],
];

describe('values.schema.json', { skip }, () => {
  for (const [name, values, message] of BAD_VALUES) {
    test(`rejects ${name} with a message naming the key`, () => {
      const run = helmWithValues(['template', 'boot'], values);
      assert.notEqual(run.status, 0, `helm accepted ${JSON.stringify(values)}`);
      assert.match(run.stderr, /values don't meet the specifications of the schema/);
      assert.match(run.stderr, message);
    });
  }

  test('accepts the documented examples', () => {
    const run = helmWithValues(['template', 'boot'], {
      dataplane: {
        kvm: { mode: 'hostPath', groupId: 108 },
        resources: { limits: { memory: '6Gi', cpu: 2 } },
      },
      metrics: { serviceMonitor: { enabled: true, interval: '1m30s' } },
    });
    assert.equal(run.status, 0, run.stderr);
  });

  test('accepts the boot-network example of docs/helm.md', () => {
    const run = helmWithValues(['template', 'boot'], {
      dataplane: {
        listen: ['192.168.1.0/24', 'fd00:b007::/64', '!192.168.1.1', 'eth1', '$(HOST_IP)'],
        listenSkipInterfaces: ['lo', 'kube-ipvs0', 'cni*'],
        statusAllow: ['10.20.0.0/16', 'fd00:20::/64'],
        metrics: { listen: '127.0.0.1', probePort: 9671 },
        extraVolumes: [{ name: 'nbd', hostPath: { path: '/run/nbd' } }],
        extraVolumeMounts: [{ name: 'nbd', mountPath: '/run/nbd', readOnly: true }],
      },
      operator: { replicas: 2, podDisruptionBudget: { minAvailable: '50%' } },
      securityContext: { runAsUser: 2000, runAsGroup: 2000 },
      crds: { install: true, keep: false },
    });
    assert.equal(run.status, 0, run.stderr);
  });
});
