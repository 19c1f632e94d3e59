/**
 * The BootClient CRD, built from this one TypeScript object. crds/bootclients.rtftp.io.yaml
 * is generated from it (operator/scripts/generate-crd.ts) and a test fails when the
 * committed YAML differs, so the schema the API server enforces and the types and
 * validation the operator uses (common/src/bootclient.ts) cannot drift apart.
 */
import {
  BOOTCLIENT_GROUP,
  BOOTCLIENT_KIND,
  BOOTCLIENT_PLURAL,
  BOOTCLIENT_VERSION,
} from './bootclient.ts';
import { MAX_IDLE_TIMEOUT, MAX_PARTITION } from './nbd-config.ts';

/** A rule the API server evaluates (CEL), with the same check in JS for test servers. */
export interface CelRule {
  rule: string;
  message: string;
  check: (self: unknown) => boolean;
}

const IPV4 =
  '((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
const IPV6_SHAPE = '[0-9a-f.]*:[0-9a-f:.]*';

export const MOUNT_AT_ROOT_RULE: CelRule = {
  rule: "self.exists(m, m.mountpoint == '/')",
  message: 'mounts needs a mount at "/"',
  check: (self) =>
    Array.isArray(self) &&
    self.some(
      (m) =>
        typeof m === 'object' && m !== null && (m as { mountpoint?: unknown }).mountpoint === '/',
    ),
};

export const BOOTCLIENT_CEL_RULES: readonly CelRule[] = [MOUNT_AT_ROOT_RULE];

const absolutePath = (what: string) => ({
  type: 'string',
  description: what,
  minLength: 1,
  maxLength: 1024,
  pattern: '^/',
});

export const bootClientSpecSchema = {
  type: 'object',
  description:
    'Which client this is and where its boot files live: the fields of the <ip>.nbd file the dataplane reads.',
  required: ['ip', 'nbd', 'mounts', 'tftpRoot'],
  properties: {
    ip: {
      type: 'string',
      description:
        'IPv4 or IPv6 address the client sends its TFTP requests from, in canonical form (IPv6 lower-case and compressed, e.g. fd00::5). One BootClient per IP: the older one keeps it.',
      maxLength: 39,
      pattern: `^(${IPV4}|${IPV6_SHAPE})$`,
    },
    nbd: {
      type: 'object',
      description: "The NBD server holding the client's disk.",
      required: ['url'],
      properties: {
        url: {
          type: 'string',
          description:
            'nbd://HOST[:PORT]/EXPORT (port 10809 when omitted) or nbd+unix:///EXPORT?socket=/PATH.',
          minLength: 7,
          maxLength: 2048,
          pattern: '^nbd(\\+unix)?://',
        },
      },
    },
    mounts: {
      type: 'array',
      description:
        'Partitions of the disk mounted into one virtual filesystem, "/" first (e.g. partition 2 at "/", partition 1 at "/boot").',
      minItems: 1,
      maxItems: 16,
      'x-kubernetes-validations': BOOTCLIENT_CEL_RULES.map(({ rule, message }) => ({
        rule,
        message,
      })),
      items: {
        type: 'object',
        description: 'One partition and where it is mounted.',
        required: ['partition', 'mountpoint'],
        properties: {
          partition: {
            type: 'integer',
            description: `Partition number as libguestfs counts them (N is /dev/sdaN); 0 means the whole disk without a partition table. 0..${MAX_PARTITION}.`,
            minimum: 0,
            maximum: MAX_PARTITION,
          },
          mountpoint: absolutePath('Absolute path in the virtual filesystem, without "..".'),
        },
      },
    },
    tftpRoot: absolutePath(
      'Directory of the virtual filesystem served as the TFTP root: a request for kernel.img reads <tftpRoot>/kernel.img.',
    ),
    prefetch: {
      type: 'boolean',
      description:
        'Connect the disk as soon as the config appears, before the first request (default true), so the first boot does not wait for the disk.',
    },
    idleTimeout: {
      type: 'integer',
      description: `Seconds without a transfer before the disk is closed; the dataplane's --idle-timeout when omitted. 1..${MAX_IDLE_TIMEOUT}.`,
      minimum: 1,
      maximum: MAX_IDLE_TIMEOUT,
    },
    backend: {
      type: 'string',
      description:
        'How the disk is read: native (built-in reader for FAT/ext), guestfs (libguestfs appliance), or auto (default: native when it can, else guestfs).',
      enum: ['auto', 'native', 'guestfs'],
    },
  },
};

const conditionSchema = {
  type: 'object',
  description: 'One aspect of the current state (metav1.Condition).',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: { type: 'string', description: 'Accepted, Rendered or Conflict.', maxLength: 316 },
    status: {
      type: 'string',
      description: 'True, False or Unknown.',
      enum: ['True', 'False', 'Unknown'],
    },
    observedGeneration: {
      type: 'integer',
      format: 'int64',
      description: 'The metadata.generation this condition was computed from.',
      minimum: 0,
    },
    lastTransitionTime: {
      type: 'string',
      format: 'date-time',
      description: 'When the status last changed.',
    },
    reason: {
      type: 'string',
      description: 'Machine-readable CamelCase reason.',
      minLength: 1,
      maxLength: 1024,
      pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
    },
    message: { type: 'string', description: 'Human-readable details.', maxLength: 32768 },
  },
};

export const bootClientStatusSchema = {
  type: 'object',
  description: 'What the operator made of this BootClient.',
  properties: {
    observedGeneration: {
      type: 'integer',
      format: 'int64',
      description: 'The metadata.generation the operator last processed.',
      minimum: 0,
    },
    conditions: {
      type: 'array',
      description:
        'Accepted (spec valid), Rendered (its <ip>.nbd is in the rendered configs), Conflict (another BootClient holds the IP).',
      maxItems: 8,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
      items: conditionSchema,
    },
  },
};

const condition = (type: string) => `.status.conditions[?(@.type=="${type}")].status`;

/** The CustomResourceDefinition object, as written to crds/. */
export function buildBootClientCrd() {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${BOOTCLIENT_PLURAL}.${BOOTCLIENT_GROUP}` },
    spec: {
      group: BOOTCLIENT_GROUP,
      scope: 'Namespaced',
      names: {
        kind: BOOTCLIENT_KIND,
        listKind: `${BOOTCLIENT_KIND}List`,
        plural: BOOTCLIENT_PLURAL,
        singular: 'bootclient',
        shortNames: ['bc'],
      },
      versions: [
        {
          name: BOOTCLIENT_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            { name: 'IP', type: 'string', jsonPath: '.spec.ip', description: 'Client address' },
            { name: 'NBD URL', type: 'string', jsonPath: '.spec.nbd.url', description: 'Disk' },
            {
              name: 'Accepted',
              type: 'string',
              jsonPath: condition('Accepted'),
              description: 'Spec valid',
            },
            {
              name: 'Rendered',
              type: 'string',
              jsonPath: condition('Rendered'),
              description: 'Config served',
            },
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description:
                'A machine that network-boots from rtftp: the TFTP server serves it files out of its own NBD disk.',
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: 'rtftp.io/v1alpha1' },
                kind: { type: 'string', description: 'BootClient' },
                metadata: { type: 'object' },
                spec: bootClientSpecSchema,
                status: bootClientStatusSchema,
              },
            },
          },
        },
      ],
    },
  };
}
