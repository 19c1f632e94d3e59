/**
 * Which metrics (and which of their labels) a PromQL expression reads: enough of PromQL
 * to check dashboards and alerts against the metrics the code registers, without a parser.
 */
const KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
  'atan2',
]);
const GROUPING = /\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g;

export interface MetricUse {
  metric: string;
  labels: string[];
}

export function metricUses(expr: string): MetricUse[] {
  const uses: MetricUse[] = [];
  // Label values and Grafana variables inside strings are not names.
  const code = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""');
  // name{matchers}: the metric and the label names its matchers use.
  const withMatchers = /(?<![\w.$:])([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g;
  for (const m of code.matchAll(withMatchers)) {
    const labels = [...m[2]!.matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)/g)].map((l) => l[1]!);
    uses.push({ metric: m[1]!, labels });
  }
  const bare = code
    .replace(withMatchers, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(GROUPING, ' ');
  for (const m of bare.matchAll(/(?<![\w.$:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()/g)) {
    if (!KEYWORDS.has(m[1]!)) uses.push({ metric: m[1]!, labels: [] });
  }
  return uses;
}
