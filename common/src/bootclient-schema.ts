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
import { buildCrd, conditionColumn, statusSchema } from './crd-builder.ts';
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
        "IPv4 or IPv6 address the client sends its TFTP requests from, in canonical form (IPv6 lower-case and compressed, e.g. fd00::5). One BootClient per IP: the older one in the namespace holding the IP keeps it, and an IP claimed from another namespace is never taken over. Outside the operator's namespace it must lie in the clientCIDRs of a BootNetwork admitting the namespace.",
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
            "nbd://HOST[:PORT]/EXPORT (port 10809 when omitted) or nbd+unix:///EXPORT?socket=/PATH. Outside the operator's namespace the target must be allowed by a BootNetwork admitting the namespace and the IP.",
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
    serial: {
      type: 'string',
      description:
        "A Raspberry Pi's serial number, 8 hex digits in any case (rendered lower-case): a request whose first path component is it (<serial>/start4.elf) is served from this client's view whatever address it comes from. One BootClient per serial, as per IP: the older one in the namespace holding the serial keeps it, and a serial claimed from another namespace is never taken over.",
      pattern: '^[0-9a-fA-F]{8}$',
    },
    backend: {
      type: 'string',
      description:
        'How the disk is read: native (built-in reader for FAT/ext), guestfs (libguestfs appliance), or auto (default: native when it can, else guestfs).',
      enum: ['auto', 'native', 'guestfs'],
    },
  },
};

export const bootClientStatusSchema = statusSchema(
  'BootClient',
  'Accepted (spec valid, and admitted by a BootNetwork outside the operator\'s namespace: reason Invalid or NotPermitted otherwise), Rendered (its <ip>.nbd is in the rendered configs), Conflict (another BootClient, or another namespace, holds the IP or the serial), Ready (every live dataplane node serves its current config: message "served by N/M nodes").',
  'Accepted, Rendered, Conflict or Ready.',
);

/** The CustomResourceDefinition object, as written to crds/. */
export function buildBootClientCrd() {
  return buildCrd({
    group: BOOTCLIENT_GROUP,
    version: BOOTCLIENT_VERSION,
    kind: BOOTCLIENT_KIND,
    plural: BOOTCLIENT_PLURAL,
    singular: 'bootclient',
    shortNames: ['bc'],
    scope: 'Namespaced',
    printerColumns: [
      { name: 'IP', type: 'string', jsonPath: '.spec.ip', description: 'Client address' },
      {
        name: 'Serial',
        type: 'string',
        jsonPath: '.spec.serial',
        description: 'Pi serial',
        priority: 1,
      },
      { name: 'NBD URL', type: 'string', jsonPath: '.spec.nbd.url', description: 'Disk' },
      {
        name: 'Accepted',
        type: 'string',
        jsonPath: conditionColumn('Accepted'),
        description: 'Spec valid and permitted',
      },
      {
        name: 'Rendered',
        type: 'string',
        jsonPath: conditionColumn('Rendered'),
        description: 'Config rendered',
      },
      {
        name: 'Ready',
        type: 'string',
        jsonPath: conditionColumn('Ready'),
        description: 'Served by every live dataplane node',
      },
    ],
    description:
      'A machine that network-boots from rtftp: the TFTP server serves it files out of its own NBD disk.',
    spec: bootClientSpecSchema,
    status: bootClientStatusSchema,
  });
}
