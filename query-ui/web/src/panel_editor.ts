// The visual dashboard editor: the title and the panels as a form (type, data source, title,
// query, unit, width), with add, remove and move up/down, saved through the same PUT as the
// JSON editor. Inputs write straight into a working copy; only structural changes redraw, so
// typing keeps its focus.

import { h, clear, modal } from "./dom";
import type { Dashboard, Panel } from "./dashboards";

const TYPES: [Panel["type"], string][] = [
  ["timeseries", "Time series"],
  ["stat", "Stat"],
  ["table", "Table"],
  ["logs", "Logs"],
  ["histogram", "Histogram"],
];
const SOURCES: [Panel["datasource"], string][] = [
  ["metrics", "Metrics (PromQL)"],
  ["logs", "Logs (LogQL)"],
];
const UNITS: [string, string][] = [
  ["none", "No unit"],
  ["bytes", "Bytes"],
  ["seconds", "Seconds"],
  ["percent", "Percent"],
];
const WIDTHS = [3, 4, 6, 8, 12];

function select<T extends string>(label: string, options: [T, string][], value: string, set: (v: T) => void): HTMLSelectElement {
  return h(
    "select",
    { "aria-label": label, name: label, onchange: (e: Event) => set((e.target as HTMLSelectElement).value as T) },
    options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)),
  );
}

/** Opens the editor on a copy of `d`; `save` gets the edited document (and may throw to show why). */
export function panelEditor(d: Dashboard, heading: string, save: (d: Dashboard) => Promise<void>): void {
  const work: Dashboard = structuredClone(d);
  const list = h("div", { class: "pe-list", "data-testid": "panel-list" });
  const err = h("div", { class: "query-error", role: "alert", hidden: true });
  const title = h("input", { class: "wide", name: "dashboard-title", "aria-label": "dashboard title", value: work.title ?? "" });
  title.addEventListener("input", () => (work.title = title.value));

  const move = (i: number, by: number) => {
    const [p] = work.panels.splice(i, 1);
    work.panels.splice(i + by, 0, p);
    draw();
  };
  const row = (p: Panel, i: number) => {
    const query = h("textarea", { class: "mono pe-query", rows: 2, name: "query", "aria-label": "query", spellcheck: "false", placeholder: p.datasource === "logs" ? '{job="app"} |= "error"' : "rate(http_requests_total[5m])" });
    query.value = p.query ?? "";
    query.addEventListener("input", () => (p.query = query.value));
    const ptitle = h("input", { name: "panel-title", "aria-label": "panel title", placeholder: "Panel title", value: p.title ?? "" });
    ptitle.addEventListener("input", () => (p.title = ptitle.value));
    const n = work.panels.length;
    const iconBtn = (text: string, label: string, disabled: boolean, onclick: () => void) =>
      h("button", { type: "button", class: "icon-btn", title: label, "aria-label": label, disabled, onclick }, text);
    return h(
      "div",
      { class: "pe-row", "data-testid": "panel-row" },
      h("span", { class: "pe-num" }, String(i + 1)),
      h(
        "div",
        { class: "pe-fields" },
        h(
          "div",
          { class: "pe-line" },
          ptitle,
          select("type", TYPES, p.type, (v) => (p.type = v)),
          select("datasource", SOURCES, p.datasource, (v) => {
            p.datasource = v;
            draw();
          }),
          select("unit", UNITS, p.unit ?? "none", (v) => (p.unit = v === "none" ? undefined : (v as Panel["unit"]))),
          select(
            "width",
            [...new Set([...WIDTHS, p.width ?? 6])].sort((a, b) => a - b).map((w) => [String(w), `${w}/12 wide`] as [string, string]),
            String(p.width ?? 6),
            (v) => (p.width = Number(v)),
          ),
        ),
        query,
      ),
      h(
        "div",
        { class: "pe-btns" },
        iconBtn("↑", "Move up", i === 0, () => move(i, -1)),
        iconBtn("↓", "Move down", i === n - 1, () => move(i, 1)),
        iconBtn("✕", "Remove panel", false, () => {
          work.panels.splice(i, 1);
          draw();
        }),
      ),
    );
  };
  const draw = () =>
    clear(list, work.panels.length ? work.panels.map(row) : h("div", { class: "empty small" }, "No panels yet: add one."));
  const add = h(
    "button",
    {
      type: "button",
      class: "btn",
      "data-testid": "add-panel",
      onclick: () => {
        const last = work.panels[work.panels.length - 1];
        work.panels.push({ title: "", type: "timeseries", datasource: last?.datasource ?? "metrics", query: "", width: 6 });
        draw();
        list.querySelector<HTMLInputElement>(".pe-row:last-child input[name=panel-title]")?.focus();
      },
    },
    "+ Add panel",
  );
  const saveBtn = h(
    "button",
    {
      type: "button",
      class: "btn primary",
      "data-testid": "save-dashboard",
      onclick: async () => {
        err.hidden = true;
        try {
          if (!work.title?.trim()) throw new Error("give the dashboard a title");
          const empty = work.panels.findIndex((p) => !p.query?.trim());
          if (empty >= 0) throw new Error(`panel ${empty + 1} has no query`);
          work.panels.forEach((p, i) => (p.title = p.title?.trim() || `Panel ${i + 1}`));
          await save(work);
          close();
        } catch (e) {
          err.textContent = (e as Error).message;
          err.hidden = false;
        }
      },
    },
    "Save",
  );
  draw();
  const close = modal(
    heading,
    h("div", { class: "panel-editor" }, h("label", { class: "field pe-title" }, h("span", {}, "Title"), title), list, h("div", {}, add), err),
    [saveBtn],
  );
  title.focus();
}
