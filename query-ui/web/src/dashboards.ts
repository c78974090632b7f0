// Dashboards: JSON documents stored by the server (`/api/v1/dashboards`), two of them built in.
// A dashboard has variables filled from label values (`$name` in queries), panels (time series,
// stat, table, logs, histogram) over logs or metrics, an auto-refresh interval, and can be
// imported, edited and exported as JSON.

import { h, clear, fmtNumber, fmtBytes, fmtTime, seriesName, rerender, modal } from "./dom";
import { panelEditor } from "./panel_editor";
import { request, promRange, promInstant, lokiMetricRange, lokiQueryRange, msToNs, qs } from "./api";
import { Chart, align } from "./chart";
import { picker, rangeFrom, resolve, setRange, stepFor } from "./time";
import { update, go } from "./route";
import { histogramQuery, isMetricQuery } from "./logql";
import { lokiValues, promValues } from "./complete";

export interface Variable {
  name: string;
  label?: string;
  source: "logs" | "metrics";
  labelName: string;
  /** Metrics: a series selector narrowing the values; logs: a stream selector. */
  query?: string;
}
export interface Panel {
  title: string;
  type: "timeseries" | "stat" | "table" | "logs" | "histogram";
  datasource: "logs" | "metrics";
  query: string;
  width?: number;
  unit?: "bytes" | "seconds" | "percent" | "none";
  stacked?: boolean;
}
export interface Dashboard {
  id?: string;
  title: string;
  description?: string;
  refresh?: string;
  time?: { from: string; to: string };
  variables?: Variable[];
  panels: Panel[];
}

const REFRESH = ["off", "5s", "10s", "30s", "1m", "5m", "15m"];

function unitFmt(unit?: string): (v: number) => string {
  if (unit === "bytes") return fmtBytes;
  if (unit === "seconds") return (v) => `${fmtNumber(v)} s`;
  if (unit === "percent") return (v) => `${fmtNumber(v)} %`;
  return fmtNumber;
}

function substitute(query: string, vars: Map<string, string>): string {
  return query.replace(/\$\{(\w+)\}|\$(\w+)/g, (m, a, b) => {
    const v = vars.get(a ?? b);
    return v === undefined ? m : v === "" ? ".+" : v.replace(/[\\"]/g, "\\$&");
  });
}

function jsonEditor(title: string, initial: string, onSave: (d: Dashboard, close: () => void) => Promise<void>): void {
  const area = h("textarea", { class: "json-edit mono", spellcheck: "false", "aria-label": "dashboard JSON" });
  area.value = initial;
  const err = h("div", { class: "query-error", hidden: true });
  const save = h(
    "button",
    {
      type: "button",
      class: "btn primary",
      onclick: async () => {
        err.hidden = true;
        try {
          await onSave(JSON.parse(area.value) as Dashboard, close);
        } catch (e) {
          err.textContent = (e as Error).message;
          err.hidden = false;
        }
      },
    },
    "Save",
  );
  const file = h("input", {
    type: "file",
    accept: "application/json,.json",
    "aria-label": "JSON file",
    onchange: async (e: Event) => {
      const f = (e.target as HTMLInputElement).files?.[0];
      if (f) area.value = await f.text();
    },
  });
  const close = modal(title, h("div", {}, h("label", { class: "field" }, h("span", {}, "From a file"), file), area, err), [save]);
  area.focus();
}

function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "").slice(0, 60) || "dashboard";
}

async function saveDashboard(id: string, d: Dashboard): Promise<void> {
  await request(`/api/v1/dashboards/${encodeURIComponent(id)}`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(d, null, 2),
  });
}

function listView(body: HTMLElement): { destroy?(): void } {
  const list = h("div", { class: "dash-list", "data-testid": "dashboard-list" }, h("div", { class: "muted" }, "Loading…"));
  const importBtn = h(
    "button",
    {
      type: "button",
      class: "btn",
      onclick: () =>
        jsonEditor("Import dashboard JSON", JSON.stringify({ title: "New dashboard", refresh: "off", variables: [], panels: [{ title: "Up", type: "timeseries", datasource: "metrics", query: "up", width: 12 }] }, null, 2), async (d, close) => {
          const id = d.id && !d.id.startsWith("builtin-") ? d.id : slug(d.title ?? "");
          await saveDashboard(id, { ...d, id });
          close();
          go("dashboards", new URLSearchParams({ id }));
        }),
    },
    "Import / new",
  );
  const newBtn = h(
    "button",
    {
      type: "button",
      class: "btn primary",
      "data-testid": "new-dashboard",
      onclick: () =>
        panelEditor({ title: "", refresh: "off", variables: [], panels: [] }, "New dashboard", async (d) => {
          const id = slug(d.title);
          await saveDashboard(id, { ...d, id });
          go("dashboards", new URLSearchParams({ id }));
        }),
    },
    "New dashboard",
  );
  body.append(h("div", { class: "toolbar" }, h("h1", { class: "page-title" }, "Dashboards"), h("span", { class: "grow" }), importBtn, newBtn), list);
  request("/api/v1/dashboards")
    .then((b) => {
      const items = b.data as { id: string; title: string; builtin: boolean; description?: string }[];
      clear(
        list,
        items.map((d) =>
          h(
            "a",
            { class: "card dash-card", href: `#/dashboards?${qs({ id: d.id })}`, "data-id": d.id },
            h("div", { class: "strong" }, d.title),
            d.description ? h("div", { class: "muted small" }, d.description) : null,
            d.builtin ? h("span", { class: "badge" }, "built-in") : null,
          ),
        ),
      );
    })
    .catch((e) => clear(list, h("div", { class: "query-error" }, (e as Error).message)));
  return {};
}

export function dashboardsPage(body: HTMLElement, params: URLSearchParams): { destroy?(): void } {
  const id = params.get("id");
  if (!id) return listView(body);
  let timer: number | undefined;
  const charts: Chart[] = [];
  const grid = h("div", { class: "dash-grid", "data-testid": "dashboard" });
  const varsEl = h("div", { class: "vars" });
  let dash: Dashboard | undefined;

  const run = async () => {
    if (!dash) return;
    charts.splice(0).forEach((c) => c.destroy());
    const vars = new Map<string, string>();
    for (const v of dash.variables ?? []) vars.set(v.name, params.get(`var-${v.name}`) ?? "");
    const { start, end } = resolve(rangeFrom(params));
    clear(grid);
    for (const p of dash.panels) {
      const content = h("div", { class: "panel-body" }, h("div", { class: "muted small" }, "Loading…"));
      const el = h("section", { class: `card panel span-${Math.min(12, Math.max(2, p.width ?? 6))}`, "data-panel-type": p.type }, h("div", { class: "card-head" }, h("h2", {}, p.title)), content);
      grid.append(el);
      void renderPanel(p, substitute(p.query, vars), start, end, content, charts).catch((e) =>
        clear(content, h("div", { class: "query-error small" }, (e as Error).message)),
      );
    }
  };

  const head = h("div", { class: "toolbar" }, h("a", { href: "#/dashboards", class: "btn" }, "← Dashboards"), h("h1", { class: "page-title" }, "…"));
  body.append(head, varsEl, grid);

  request(`/api/v1/dashboards/${encodeURIComponent(id)}`)
    .then(async (b) => {
      dash = b.data as Dashboard;
      const d = dash;
      if (!params.get("from") && d.time) setRange(params, d.time);
      const refresh = params.get("refresh") ?? d.refresh ?? "off";
      const refreshSel = h(
        "select",
        {
          "aria-label": "auto-refresh",
          onchange: (e: Event) => {
            params.set("refresh", (e.target as HTMLSelectElement).value);
            update(params, false);
            rerender();
          },
        },
        REFRESH.map((r) => h("option", { value: r, selected: r === refresh }, r === "off" ? "Auto-refresh off" : `Every ${r}`)),
      );
      const exportBtn = h(
        "button",
        {
          type: "button",
          class: "btn",
          onclick: () => {
            const blob = new Blob([JSON.stringify(d, null, 2)], { type: "application/json" });
            const a = h("a", { href: URL.createObjectURL(blob), download: `${id}.json` });
            a.click();
            setTimeout(() => URL.revokeObjectURL(a.href), 1000);
          },
        },
        "Export",
      );
      // A built-in is read-only: editing it saves a copy.
      const saveAs = async (nd: Dashboard) => {
        const target = id.startsWith("builtin-") ? `${id.slice(8)}-copy` : id;
        await saveDashboard(target, { ...nd, id: target });
        go("dashboards", new URLSearchParams({ id: target }));
        rerender();
      };
      const editBtn = h(
        "button",
        { type: "button", class: "btn", "data-testid": "edit-dashboard", onclick: () => panelEditor(d, `Edit ${d.title}`, saveAs) },
        id.startsWith("builtin-") ? "Copy & edit" : "Edit",
      );
      const jsonBtn = h(
        "button",
        {
          type: "button",
          class: "btn",
          title: "Edit as JSON",
          onclick: () =>
            jsonEditor(`Edit ${d.title} as JSON`, JSON.stringify(d, null, 2), async (nd, close) => {
              await saveAs(nd);
              close();
            }),
        },
        "JSON",
      );
      const delBtn = id.startsWith("builtin-")
        ? null
        : h(
            "button",
            {
              type: "button",
              class: "btn danger",
              onclick: async () => {
                if (!confirm(`Delete dashboard ${d.title}?`)) return;
                await request(`/api/v1/dashboards/${encodeURIComponent(id)}`, { method: "DELETE" });
                go("dashboards");
              },
            },
            "Delete",
          );
      clear(
        head,
        h("a", { href: "#/dashboards", class: "btn" }, "←"),
        h("h1", { class: "page-title" }, d.title),
        h("span", { class: "grow" }),
        picker(rangeFrom(params), (r) => {
          setRange(params, r);
          update(params);
          rerender();
        }),
        refreshSel,
        h("button", { type: "button", class: "btn primary", onclick: run }, "Refresh"),
        editBtn,
        jsonBtn,
        exportBtn,
        delBtn,
      );
      await fillVariables(d, params, varsEl, run);
      await run();
      const ms = refresh === "off" ? 0 : (Number(refresh.slice(0, -1)) * (refresh.endsWith("m") ? 60 : 1)) * 1000;
      if (ms > 0) timer = window.setInterval(run, ms);
    })
    .catch((e) => clear(grid, h("div", { class: "query-error" }, (e as Error).message)));

  return {
    destroy: () => {
      clearInterval(timer);
      charts.forEach((c) => c.destroy());
    },
  };
}

async function fillVariables(d: Dashboard, params: URLSearchParams, el: HTMLElement, run: () => void): Promise<void> {
  clear(el);
  for (const v of d.variables ?? []) {
    const values = v.source === "logs" ? await lokiValues(v.labelName, v.query) : await promValues(v.labelName, v.query);
    const want = params.get(`var-${v.name}`) ?? "";
    const sel = h(
      "select",
      {
        "aria-label": v.label ?? v.name,
        onchange: (e: Event) => {
          params.set(`var-${v.name}`, (e.target as HTMLSelectElement).value);
          update(params, false);
          run();
        },
      },
      h("option", { value: "" }, "All"),
      values.map((x) => h("option", { value: x, selected: x === want }, x)),
    );
    el.append(h("label", { class: "field" }, h("span", {}, v.label ?? v.name), sel));
  }
}

async function renderPanel(p: Panel, query: string, start: number, end: number, el: HTMLElement, charts: Chart[]): Promise<void> {
  const fmt = unitFmt(p.unit);
  const logs = p.datasource === "logs";
  const step = stepFor(start, end, 120);
  if (p.type === "timeseries" || p.type === "histogram") {
    const q = logs && p.type === "histogram" && !isMetricQuery(query) ? histogramQuery(query, step) : query;
    const series = logs ? await lokiMetricRange(q, start, end, step) : await promRange(q, start, end, step);
    clear(el);
    if (series.length === 0) return void el.append(h("div", { class: "empty small" }, "No data"));
    const chart = new Chart(el, {
      series: series.map((s) => ({ label: seriesName(s.metric) || p.title })),
      data: align(series, start / 1000, end / 1000, step),
      kind: p.type === "histogram" ? "bars" : p.stacked ? "stacked" : "line",
      height: 200,
      unit: fmt,
    });
    charts.push(chart);
    return;
  }
  if (p.type === "logs") {
    const streams = await lokiQueryRange(query, msToNs(start), msToNs(end), 100);
    const lines = streams.flatMap((s) => s.values.map(([ts, line]) => ({ ts: BigInt(ts), line }))).sort((a, b) => (a.ts < b.ts ? 1 : -1));
    clear(
      el,
      lines.length === 0
        ? h("div", { class: "empty small" }, "No lines")
        : h("div", { class: "panel-logs" }, lines.map((l) => h("div", { class: "ctx-line" }, h("span", { class: "log-ts" }, fmtTime(Number(l.ts / 1000000n)).slice(11)), h("span", {}, l.line)))),
    );
    return;
  }
  const rows = logs
    ? ((await request(`/loki/api/v1/query?${qs({ query, time: msToNs(end) })}`, undefined, query)).data.result as { metric: Record<string, string>; value: [number, string] }[])
    : await promInstant(query, end);
  if (p.type === "stat") {
    const total = rows.reduce((a, r) => a + Number(r.value[1]), 0);
    clear(el, h("div", { class: "stat-big" }, rows.length ? fmt(total) : "—"));
    return;
  }
  clear(
    el,
    h(
      "table",
      { class: "data" },
      h("tbody", {}, rows.map((r) => h("tr", {}, h("td", { class: "mono small" }, seriesName(r.metric) || "value"), h("td", { class: "num" }, fmt(Number(r.value[1])))))),
    ),
  );
}
