/**
 * The BootNetwork CRD, built from this TypeScript object like the BootClient's
 * (bootclient-schema.ts): crds/bootnetworks.rtftp.io.yaml is generated from it by
 * operator/scripts/generate-crd.ts, and operator/test/crd-schema.test.ts fails when the
 * committed YAML differs or a field has no description. The schema checks shapes; the
 * operator checks the rest (that a CIDR is one, ports in order) in compileBootNetwork().
 */
import {
  BOOTNETWORK_GROUP,
  BOOTNETWORK_KIND,
  BOOTNETWORK_PLURAL,
  BOOTNETWORK_VERSION,
  MAX_BOOTNETWORK_ITEMS,
} from './bootnetwork.ts';
import { buildCrd, conditionColumn, statusSchema } from './crd-builder.ts';

const CIDR_SHAPE = '^[0-9a-fA-F.:]+(/[0-9]{1,3})?$';

const cidr = (description: string) => ({
  type: 'string',
  description,
  maxLength: 49,
  pattern: CIDR_SHAPE,
});

const stringList = (description: string, item: Record<string, unknown>) => ({
  type: 'array',
  description,
  maxItems: MAX_BOOTNETWORK_ITEMS,
  items: item,
});

const labelSelectorSchema = {
  type: 'object',
  description:
    'Namespaces whose labels match (a metav1.LabelSelector: matchLabels and matchExpressions, all must hold; {} matches every namespace).',
  properties: {
    matchLabels: {
      type: 'object',
      description: 'Labels a namespace must carry, with these values.',
      additionalProperties: { type: 'string' },
    },
    matchExpressions: {
      type: 'array',
      description: 'Requirements on namespace labels.',
      maxItems: 32,
      items: {
        type: 'object',
        description: 'One requirement: key, operator and values.',
        required: ['key', 'operator'],
        properties: {
          key: { type: 'string', description: 'The label key.', minLength: 1, maxLength: 317 },
          operator: {
            type: 'string',
            description: 'In, NotIn, Exists or DoesNotExist.',
            enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'],
          },
          values: stringList('Values for In and NotIn; empty for Exists and DoesNotExist.', {
            type: 'string',
            description: 'A label value.',
            maxLength: 63,
          }),
        },
      },
    },
  },
};

export const bootNetworkSpecSchema = {
  type: 'object',
  description:
    'What the namespaces it admits may claim: client IPs, and the NBD servers the dataplane may connect to for those clients. A tenant BootClient renders only when one BootNetwork admits its namespace, its IP and its NBD target.',
  required: ['clientCIDRs', 'namespaces'],
  properties: {
    clientCIDRs: stringList(
      'Client addresses that may be claimed through this BootNetwork, as CIDR blocks (10.0.1.0/24, fd00:1::/64) or single addresses.',
      cidr('A CIDR block or a single address.'),
    ),
    namespaces: {
      type: 'object',
      description:
        "The namespaces whose BootClients may claim these IPs: by name, by label, or both (either suffices). The operator's own namespace needs no BootNetwork.",
      properties: {
        names: stringList('Namespaces by name.', {
          type: 'string',
          description: 'A namespace name.',
          maxLength: 63,
        }),
        namespaceSelector: labelSelectorSchema,
      },
    },
    nbdServers: {
      type: 'array',
      description:
        "The NBD servers the dataplane may connect to for these clients. Loopback, link-local (169.254.0.0/16, fe80::/10) and the cluster's Service and Pod CIDRs are allowed only by an entry lying inside them: 0.0.0.0/0 does not allow 127.0.0.1. A hostname in a BootClient must resolve only to allowed addresses. None: no TCP target is allowed.",
      maxItems: MAX_BOOTNETWORK_ITEMS,
      items: {
        type: 'object',
        description: 'A block of NBD servers, and the ports allowed on it.',
        required: ['cidr'],
        properties: {
          cidr: cidr('The servers, as a CIDR block or a single address.'),
          ports: {
            type: 'array',
            description: 'Allowed ports (as NetworkPolicy writes them); none: every port.',
            maxItems: 32,
            items: {
              type: 'object',
              description: 'One port, or the range port..endPort.',
              required: ['port'],
              properties: {
                port: {
                  type: 'integer',
                  description: 'The port, or the first of the range.',
                  minimum: 1,
                  maximum: 65535,
                },
                endPort: {
                  type: 'integer',
                  description: 'The last port of the range (not below port).',
                  minimum: 1,
                  maximum: 65535,
                },
              },
            },
          },
        },
      },
    },
    unixSockets: stringList(
      "Unix socket paths on the nodes that nbd+unix:// URLs may name, exactly. None by default: a socket on the node is the node's.",
      {
        type: 'string',
        description: 'An absolute socket path.',
        maxLength: 1024,
        pattern: '^/',
      },
    ),
  },
};

export const bootNetworkStatusSchema = statusSchema(
  'BootNetwork',
  'Accepted: the spec is valid (an invalid BootNetwork admits nothing, and the message names every problem).',
  'Accepted.',
);

/** The CustomResourceDefinition object, as written to crds/. */
export function buildBootNetworkCrd() {
  return buildCrd({
    group: BOOTNETWORK_GROUP,
    version: BOOTNETWORK_VERSION,
    kind: BOOTNETWORK_KIND,
    plural: BOOTNETWORK_PLURAL,
    singular: 'bootnetwork',
    shortNames: ['bn'],
    scope: 'Cluster',
    printerColumns: [
      {
        name: 'Client CIDRs',
        type: 'string',
        jsonPath: '.spec.clientCIDRs',
        description: 'Client addresses it grants',
      },
      {
        name: 'Namespaces',
        type: 'string',
        jsonPath: '.spec.namespaces.names',
        description: 'Namespaces named (a namespaceSelector may add more)',
      },
      {
        name: 'Accepted',
        type: 'string',
        jsonPath: conditionColumn('Accepted'),
        description: 'Spec valid',
      },
    ],
    description:
      "A cluster admin's grant: which namespaces may boot which client IPs through rtftp, and from which NBD servers.",
    spec: bootNetworkSpecSchema,
    status: bootNetworkStatusSchema,
  });
}
