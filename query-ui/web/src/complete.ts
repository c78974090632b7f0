// Autocomplete for LogQL and PromQL from the servers' own label and metric APIs: label names
// inside `{...}` and `by (...)`, label values after `name="`, metric and function names elsewhere,
// LogQL pipeline stages after `|`. Answers are cached for a minute per URL.

import { request, qs } from "./api";
import type { Completer, Completion } from "./querybox";
import { wordBefore } from "./querybox";

const cache = new Map<string, { at: number; data: Promise<string[]> }>();

function cached(url: string): Promise<string[]> {
  const hit = cache.get(url);
  if (hit && Date.now() - hit.at < 60_000) return hit.data;
  const data = request(url)
    .then((b) => (Array.isArray(b.data) ? (b.data as string[]) : []))
    .catch(() => [] as string[]);
  cache.set(url, { at: Date.now(), data });
  return data;
}

export const lokiLabels = () => cached(`/loki/api/v1/labels`);
export const lokiValues = (name: string, selector?: string) =>
  cached(`/loki/api/v1/label/${encodeURIComponent(name)}/values${selector ? `?${qs({ query: selector })}` : ""}`);
export const promMetricNames = () => cached(`/api/v1/label/__name__/values`);
export const promLabels = (metric?: string) =>
  cached(`/api/v1/labels${metric ? `?${qs({ "match[]": metric })}` : ""}`);
export const promValues = (name: string, metric?: string) =>
  cached(`/api/v1/label/${encodeURIComponent(name)}/values${metric ? `?${qs({ "match[]": metric })}` : ""}`);

/** Where the caret is inside a `{...}` matcher list: the label being valued, if any. */
function matcherContext(before: string): { inBraces: boolean; valueLabel?: string; valueFrom?: number } {
  const open = before.lastIndexOf("{");
  if (open < 0 || before.lastIndexOf("}") > open) return { inBraces: false };
  const inner = before.slice(open + 1);
  const m = /([A-Za-z_][\w]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)$/.exec(inner);
  if (m) return { inBraces: true, valueLabel: m[1], valueFrom: before.length - m[3].length };
  return { inBraces: true };
}

const LOGQL_STAGES = [
  "json",
  "logfmt",
  "pattern",
  "regexp",
  "unpack",
  "line_format",
  "label_format",
  "drop",
  "keep",
  "decolorize",
];
const LOGQL_FUNCS = [
  "count_over_time",
  "rate",
  "bytes_over_time",
  "bytes_rate",
  "sum_over_time",
  "avg_over_time",
  "max_over_time",
  "min_over_time",
  "quantile_over_time",
  "absent_over_time",
  "sum",
  "avg",
  "min",
  "max",
  "count",
  "topk",
  "bottomk",
];

export const logqlCompleter: Completer = async (text, caret) => {
  const before = text.slice(0, caret);
  const ctx = matcherContext(before);
  if (ctx.valueLabel !== undefined && ctx.valueFrom !== undefined) {
    const values = await lokiValues(ctx.valueLabel);
    return { from: ctx.valueFrom, items: values.map((v) => ({ label: v, detail: ctx.valueLabel })) };
  }
  const { from } = wordBefore(text, caret);
  if (ctx.inBraces) {
    const names = await lokiLabels();
    return { from, items: names.map((n) => ({ label: n, insert: `${n}="`, detail: "label" })) };
  }
  if (/\|\s*\w*$/.test(before) && !/\|[=~]\s*\w*$/.test(before)) {
    return { from, items: LOGQL_STAGES.map((s) => ({ label: s, detail: "stage" })) };
  }
  if (/(^|[\s(])\w*$/.test(before) && !before.includes("{")) {
    const items = LOGQL_FUNCS.map((f) => ({ label: f, detail: "function" }));
    if (before.trim() === "") items.unshift({ label: "{", detail: "stream selector" });
    return { from, items };
  }
  return undefined;
};

const PROMQL_FUNCS = [
  "abs", "absent", "absent_over_time", "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min",
  "count_over_time", "day_of_month", "day_of_week", "delta", "deriv", "exp", "floor", "histogram_quantile",
  "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln",
  "log2", "log10", "max_over_time", "min_over_time", "predict_linear", "quantile_over_time", "rate", "resets",
  "round", "scalar", "sort", "sort_desc", "sqrt", "stddev_over_time", "sum_over_time", "time", "timestamp", "vector",
  "sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
];

/** The metric name a `{` or `by (` clause belongs to, for narrowing label suggestions. */
function metricBefore(before: string): string | undefined {
  const m = /([A-Za-z_:][\w:]*)\s*\{[^{}]*$/.exec(before);
  return m && !PROMQL_FUNCS.includes(m[1]) ? m[1] : undefined;
}

export const promqlCompleter: Completer = async (text, caret): Promise<Completion | undefined> => {
  const before = text.slice(0, caret);
  const ctx = matcherContext(before);
  const metric = metricBefore(before);
  const sel = metric ? `{__name__="${metric}"}` : undefined;
  if (ctx.valueLabel !== undefined && ctx.valueFrom !== undefined) {
    const values = await promValues(ctx.valueLabel, sel);
    return { from: ctx.valueFrom, items: values.map((v) => ({ label: v, detail: ctx.valueLabel })) };
  }
  const { from } = wordBefore(text, caret);
  if (ctx.inBraces) {
    const names = (await promLabels(sel)).filter((n) => n !== "__name__");
    return { from, items: names.map((n) => ({ label: n, insert: `${n}="`, detail: "label" })) };
  }
  if (/\b(by|without)\s*\([^)]*$/.test(before)) {
    const names = (await promLabels()).filter((n) => n !== "__name__");
    return { from, items: names.map((n) => ({ label: n, detail: "label" })) };
  }
  if (/\[[^\]]*$/.test(before)) {
    return { from, items: ["1m", "5m", "15m", "1h"].map((d) => ({ label: d, detail: "range" })) };
  }
  const metrics = await promMetricNames();
  return {
    from,
    items: [
      ...metrics.map((m) => ({ label: m, detail: "metric" })),
      ...PROMQL_FUNCS.map((f) => ({ label: f, insert: `${f}(`, detail: "function" })),
    ],
  };
};
