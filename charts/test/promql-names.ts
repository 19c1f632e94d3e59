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

export interface Matcher {
  label: string;
  op: '=' | '!=' | '=~' | '!~';
  value: string;
}

export interface MetricUse {
  metric: string;
  labels: string[];
  /** The label matchers, with their values as written (Grafana variables unexpanded). */
  matchers: Matcher[];
}

const STRING = /"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g;

export function metricUses(expr: string): MetricUse[] {
  const uses: MetricUse[] = [];
  // Label values and Grafana variables inside strings are not names: each string becomes
  // a numbered placeholder, so matchers can still get their value back.
  const strings: string[] = [];
  const code = expr.replace(STRING, (str) => `"${strings.push(str.slice(1, -1)) - 1}"`);
  // name{matchers}: the metric and the label names its matchers use.
  const withMatchers = /(?<![\w.$:])([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}/g;
  for (const m of code.matchAll(withMatchers)) {
    const matchers = [...m[2]!.matchAll(/([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"(\d+)"/g)].map(
      (l): Matcher => ({
        label: l[1]!,
        op: l[2] as Matcher['op'],
        value: strings[Number(l[3])]!,
      }),
    );
    uses.push({ metric: m[1]!, labels: matchers.map((x) => x.label), matchers });
  }
  const bare = code
    .replace(withMatchers, ' ')
    .replace(/"\d+"/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(GROUPING, ' ');
  for (const m of bare.matchAll(/(?<![\w.$:])([a-zA-Z_:][\w:]*)(?![\w:]|\s*\()/g)) {
    if (!KEYWORDS.has(m[1]!)) uses.push({ metric: m[1]!, labels: [], matchers: [] });
  }
  return uses;
}
