// The status page: scrape targets with health and last error, TSDB cardinality (top metrics,
// labels and pairs by series), the effective configuration with secrets redacted, build info.

import { h, clear, fmtBytes, fmtNumber, labelsText } from "./dom";
import { request } from "./api";
import { update } from "./route";

const TABS: [string, string][] = [
  ["targets", "Targets"],
  ["tsdb", "Storage & cardinality"],
  ["config", "Configuration"],
  ["build", "Build info"],
];

function table(head: string[], rows: (string | number | HTMLElement)[][], numeric: number[] = []): HTMLElement {
  return h(
    "table",
    { class: "data" },
    h("thead", {}, h("tr", {}, head.map((t, i) => h("th", { class: numeric.includes(i) ? "num" : "" }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => h("td", { class: numeric.includes(i) ? "num" : "" }, c))))),
  );
}

async function targets(el: HTMLElement): Promise<void> {
  const body = await request("/api/v1/targets");
  const active = body.data.activeTargets as any[];
  const pools = new Map<string, any[]>();
  for (const t of active) pools.set(t.scrapePool, [...(pools.get(t.scrapePool) ?? []), t]);
  if (active.length === 0) return clear(el, h("div", { class: "empty" }, "No scrape targets in this process (add --scrape or collector.scrape)."));
  clear(
    el,
    [...pools].map(([pool, ts]) => {
      const up = ts.filter((t) => t.health === "up").length;
      return h(
        "section",
        { class: "card" },
        h("div", { class: "card-head" }, h("h2", {}, pool), h("span", { class: `badge ${up === ts.length ? "health-ok" : "st-firing"}` }, `${up}/${ts.length} up`)),
        table(
          ["Endpoint", "Health", "Labels", "Last scrape", "Duration", "Error"],
          ts.map((t) => [
            h("span", { class: "mono" }, t.scrapeUrl),
            h("span", { class: `badge health-${t.health === "up" ? "ok" : t.health === "down" ? "err" : "unknown"}` }, t.health),
            h("span", { class: "mono small" }, labelsText(t.labels)),
            t.lastScrape?.startsWith("0001") ? "never" : new Date(t.lastScrape).toLocaleTimeString(),
            `${(t.lastScrapeDuration * 1000).toFixed(1)} ms`,
            t.lastError ? h("span", { class: "query-error small" }, t.lastError) : "",
          ]),
        ),
      );
    }),
  );
}

async function tsdb(el: HTMLElement): Promise<void> {
  const body = await request("/api/v1/status/tsdb?limit=15");
  const d = body.data;
  const stats = d.headStats ?? {};
  const pairs = (rows: { name: string; value: number }[] | undefined, fmt = fmtNumber) => (rows ?? []).map((r) => [h("span", { class: "mono" }, r.name), fmt(r.value)]);
  const fmtT = (ms: number) => (ms ? new Date(ms).toLocaleString() : "—");
  clear(
    el,
    h(
      "div",
      { class: "stats" },
      [
        ["Series", fmtNumber(stats.numSeries ?? 0)],
        ["Label pairs", fmtNumber(stats.numLabelPairs ?? 0)],
        ["Chunks", fmtNumber(stats.chunkCount ?? 0)],
        ["Head from", fmtT(stats.minTime)],
        ["Head to", fmtT(stats.maxTime)],
      ].map(([k, v]) => h("div", { class: "stat" }, h("div", { class: "stat-v" }, v), h("div", { class: "stat-k" }, k))),
    ),
    h(
      "div",
      { class: "cards two" },
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Top metrics by series")), table(["Metric", "Series"], pairs(d.seriesCountByMetricName), [1])),
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Labels by distinct values")), table(["Label", "Values"], pairs(d.labelValueCountByLabelName), [1])),
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Label pairs by series")), table(["Pair", "Series"], pairs(d.seriesCountByLabelValuePair), [1])),
      h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Label memory")), table(["Label", "Bytes"], pairs(d.memoryInBytesByLabelName, fmtBytes), [1])),
    ),
  );
}

async function config(el: HTMLElement): Promise<void> {
  const text = await request<string>("/api/v1/status/config");
  const yaml = typeof text === "string" ? text : (text as any).data?.yaml ?? JSON.stringify(text, null, 2);
  clear(el, h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Effective configuration"), h("span", { class: "muted small" }, "secrets shown as <secret>")), h("pre", { class: "config" }, yaml)));
}

async function build(el: HTMLElement): Promise<void> {
  const body = await request("/api/v1/status/buildinfo");
  clear(el, h("section", { class: "card" }, table(["Field", "Value"], Object.entries(body.data).map(([k, v]) => [k, String(v)]))));
}

export function statusPage(body: HTMLElement, params: URLSearchParams) {
  const tab = TABS.some(([t]) => t === params.get("tab")) ? params.get("tab")! : "targets";
  const content = h("div", { class: "status-body" }, h("div", { class: "muted" }, "Loading…"));
  body.append(
    h(
      "div",
      { class: "toolbar" },
      h("h1", { class: "page-title" }, "Status"),
      h(
        "div",
        { class: "seg" },
        TABS.map(([t, label]) =>
          h(
            "button",
            {
              type: "button",
              class: t === tab ? "active" : "",
              onclick: () => {
                params.set("tab", t);
                update(params);
                window.dispatchEvent(new Event("tarsier:render"));
              },
            },
            label,
          ),
        ),
      ),
    ),
    content,
  );
  const loaders: Record<string, (el: HTMLElement) => Promise<void>> = { targets, tsdb, config, build };
  const load = () => loaders[tab](content).catch((e) => clear(content, h("div", { class: "query-error" }, (e as Error).message)));
  void load();
  const timer = tab === "targets" ? window.setInterval(load, 10000) : undefined;
  return { destroy: () => clearInterval(timer) };
}
