/**
 * The parts every rtftp CRD shares (condition and status schemas, the CRD skeleton), so
 * BootClient and BootNetwork are built from one source the same way
 * (operator/scripts/generate-crd.ts writes them to crds/).
 */

/** metav1.Condition; `types` lists the condition types this resource uses, for its description. */
export const conditionSchema = (types: string) => ({
  type: 'object',
  description: 'One aspect of the current state (metav1.Condition).',
  required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
  properties: {
    type: { type: 'string', description: types, maxLength: 316 },
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
});

/** The status of a resource: observedGeneration and its conditions. */
export function statusSchema(kind: string, conditionsDescription: string, conditionTypes: string) {
  return {
    type: 'object',
    description: `What the operator made of this ${kind}.`,
    properties: {
      observedGeneration: {
        type: 'integer',
        format: 'int64',
        description: 'The metadata.generation the operator last processed.',
        minimum: 0,
      },
      conditions: {
        type: 'array',
        description: conditionsDescription,
        maxItems: 8,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['type'],
        items: conditionSchema(conditionTypes),
      },
    },
  };
}

/** The printer-column path of a condition's status. */
export const conditionColumn = (type: string) => `.status.conditions[?(@.type=="${type}")].status`;

export interface CrdDefinition {
  group: string;
  version: string;
  kind: string;
  plural: string;
  singular: string;
  shortNames: string[];
  scope: 'Namespaced' | 'Cluster';
  /** Columns before Age (always last); priority 1 = shown only by `kubectl get -o wide`. */
  printerColumns: {
    name: string;
    type: string;
    jsonPath: string;
    description: string;
    priority?: number;
  }[];
  description: string;
  spec: object;
  status: object;
}

/** A CustomResourceDefinition with one served, stored version and a status subresource. */
export function buildCrd(d: CrdDefinition) {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${d.plural}.${d.group}` },
    spec: {
      group: d.group,
      scope: d.scope,
      names: {
        kind: d.kind,
        listKind: `${d.kind}List`,
        plural: d.plural,
        singular: d.singular,
        shortNames: d.shortNames,
      },
      versions: [
        {
          name: d.version,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [
            ...d.printerColumns,
            { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
          ],
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: d.description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: `${d.group}/${d.version}` },
                kind: { type: 'string', description: d.kind },
                metadata: { type: 'object' },
                spec: d.spec,
                status: d.status,
              },
            },
          },
        },
      ],
    },
  };
}
