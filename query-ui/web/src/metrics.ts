// The metrics explorer: several PromQL queries (autocompleted) drawn on one uPlot chart with a
// live legend, line or stacked, or shown as a table of the values at the end of the range.
// Dragging across the chart zooms the shared time range.

import { h, clear, fmtNumber, seriesName, segmented, rerender } from "./dom";
import { promRange, promInstant, type MatrixSeries } from "./api";
import { queryBox, type QueryBox } from "./querybox";
import { promqlCompleter } from "./complete";
import { Chart, align, PALETTE } from "./chart";
import { resolve, stepFor, type Range } from "./time";

export interface MetricsHost {
  params: URLSearchParams;
  range(): Range;
  setRange(r: Range): void;
  save(push?: boolean): void;
  compact?: boolean;
}

const MAX_SERIES = 200;

export class MetricsExplorer {
  el: HTMLElement;
  private boxes: QueryBox[] = [];
  private swatches = new Map<QueryBox, HTMLElement>();
  private boxesEl = h("div", { class: "query-list" });
  private chartEl = h("div", { class: "chart", "data-testid": "metrics-chart" });
  private tableEl = h("div", { class: "table-wrap", "data-testid": "metrics-table" });
  private info = h("div", { class: "muted small" });
  private chart?: Chart;
  private abort?: AbortController;

  constructor(private host: MetricsHost) {
    const p = host.params;
    const queries = p.getAll("mq");
    for (const q of queries.length ? queries : [""]) this.addBox(q);
    const kind = p.get("mkind") === "stacked" ? "stacked" : "line";
    const view = p.get("mview") === "table" ? "table" : "chart";
    const seg = (key: string, current: string, options: [string, string][]) =>
      segmented(options, current, (v) => {
        p.set(key, v);
        host.save(false);
        rerender();
      });
    this.el = h(
      "section",
      { class: `explorer metrics${host.compact ? " compact" : ""}` },
      this.boxesEl,
      h(
        "div",
        { class: "metrics-bar" },
        h("button", { type: "button", class: "btn", onclick: () => this.addBox("", true) }, "+ Add query"),
        h("span", { class: "grow" }),
        this.info,
        seg("mkind", kind, [
          ["line", "Lines"],
          ["stacked", "Stacked"],
        ]),
        seg("mview", view, [
          ["chart", "Chart"],
          ["table", "Table"],
        ]),
      ),
      view === "chart" ? this.chartEl : this.tableEl,
    );
  }

  private addBox(value: string, focus = false): void {
    const i = this.boxes.length;
    const box = queryBox({
      value,
      placeholder: "rate(tarsier_http_requests_total[1m])   — Ctrl+Enter to run",
      label: `PromQL query ${i + 1}`,
      complete: promqlCompleter,
      onRun: () => this.submit(),
    });
    const swatch = h("span", { class: "swatch" });
    swatch.style.background = PALETTE[i % PALETTE.length];
    const remove = h(
      "button",
      {
        type: "button",
        class: "icon-btn",
        title: "Remove query",
        onclick: () => {
          this.boxes = this.boxes.filter((b) => b !== box);
          this.swatches.delete(box);
          row.remove();
          this.submit();
        },
      },
      "×",
    );
    const row = h("div", { class: "query-row" }, swatch, box.el, i > 0 ? remove : null);
    this.swatches.set(box, swatch);
    this.boxes.push(box);
    this.boxesEl.append(row);
    if (focus) box.input.focus();
  }

  focus(): void {
    this.boxes[0]?.input.focus();
  }

  submit(): void {
    const p = this.host.params;
    p.delete("mq");
    for (const b of this.boxes) p.append("mq", b.value());
    this.host.save();
    void this.run();
  }

  async run(): Promise<void> {
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    const { start, end } = resolve(this.host.range());
    const width = this.chartEl.clientWidth || this.el.clientWidth || 1000;
    const step = stepFor(start, end, Math.max(100, Math.min(500, Math.floor(width / 3))));
    const table = this.host.params.get("mview") === "table";
    const active = this.boxes.filter((b) => b.value() !== "");
    this.boxes.forEach((b) => b.clearError());
    if (active.length === 0) {
      this.chart?.destroy();
      this.chart = undefined;
      clear(this.chartEl, h("div", { class: "empty" }, "Type a PromQL query; metric names complete as you type."));
      return;
    }
    this.info.textContent = "Loading…";
    const results = await Promise.all(
      active.map((b) =>
        (table ? promInstant(b.value(), end, abort.signal) : promRange(b.value(), start, end, step, abort.signal)).catch((e) => {
          if ((e as Error).name !== "AbortError") b.showError(e);
          return undefined;
        }),
      ),
    );
    if (abort.signal.aborted) return;
    if (table) {
      this.renderTable(results.map((r, i) => ({ query: active[i].value(), rows: (r ?? []) as { metric: Record<string, string>; value: [number, string] }[] })));
      return;
    }
    const series: { label: string; color: string; s: MatrixSeries }[] = [];
    results.forEach((r, qi) => {
      // The query's swatch takes the colour of its first series.
      const swatch = this.swatches.get(active[qi]);
      if (swatch) swatch.style.background = PALETTE[series.length % PALETTE.length];
      for (const s of (r ?? []) as MatrixSeries[]) {
        series.push({ label: seriesName(s.metric) || active[qi].value(), color: "", s });
      }
    });
    const shown = series.slice(0, MAX_SERIES);
    shown.forEach((s, i) => (s.color = PALETTE[i % PALETTE.length]));
    this.info.textContent = `${series.length} series${series.length > MAX_SERIES ? ` (first ${MAX_SERIES} drawn)` : ""} · step ${step}s`;
    this.chart?.destroy();
    clear(this.chartEl);
    if (shown.length === 0) {
      this.chart = undefined;
      this.chartEl.dataset.seriesCount = "0";
      this.chartEl.append(h("div", { class: "empty" }, "No data in this time range."));
      return;
    }
    this.chart = new Chart(this.chartEl, {
      series: shown.map((s) => ({ label: s.label, color: s.color })),
      data: align(
        shown.map((s) => s.s),
        start / 1000,
        end / 1000,
        step,
      ),
      kind: this.host.params.get("mkind") === "stacked" ? "stacked" : "line",
      height: this.host.compact ? 260 : 340,
      onSelect: (a, b) => this.host.setRange({ from: String(a), to: String(b) }),
    });
  }

  private renderTable(results: { query: string; rows: { metric: Record<string, string>; value: [number, string] }[] }[]): void {
    const n = results.reduce((a, r) => a + r.rows.length, 0);
    this.info.textContent = `${n} series at the end of the range`;
    clear(
      this.tableEl,
      h(
        "table",
        { class: "data" },
        h("thead", {}, h("tr", {}, h("th", {}, "Series"), h("th", { class: "num" }, "Value"))),
        h(
          "tbody",
          {},
          results.map((r) =>
            r.rows.map((row) =>
              h("tr", {}, h("td", { class: "mono" }, seriesName(row.metric) || r.query), h("td", { class: "num mono" }, fmtNumber(Number(row.value[1])))),
            ),
          ),
        ),
      ),
    );
  }

  destroy(): void {
    this.abort?.abort();
    this.chart?.destroy();
  }
}
