// The logs explorer: LogQL or plain-words query, a histogram of matching lines (drag to zoom),
// the matching lines newest first in a virtualised list (only the visible rows exist in the DOM,
// so 100,000 lines scroll smoothly), paging to older lines, live tail, and a detail drawer with
// labels, parsed fields (click to filter in or out) and the line's context.

import { h, clear, fmtTime, labelsText, seriesName, rerender } from "./dom";
import { lokiQueryRange, lokiMetricRange, request, qs, msToNs, ApiError } from "./api";
import { LiveTail, MAX_BUFFERED, type LiveState } from "./live";
import { queryBox, type QueryBox } from "./querybox";
import { logqlCompleter, lokiLabels, lokiValues } from "./complete";
import { Chart, align } from "./chart";
import { resolve, stepFor, type Range } from "./time";
import {
  addFilter,
  detectLevel,
  highlightRegex,
  histogramQuery,
  isMetricQuery,
  parseFields,
  wordsToLogql,
} from "./logql";

const PAGE = 1000;
const LEVEL_COLORS: Record<string, string> = {
  critical: "#a21caf",
  error: "#e5534b",
  warn: "#e0a526",
  info: "#4f8cff",
  debug: "#8b95a5",
  trace: "#b8c0cc",
};
const MAX_LINES = 100_000;
/** Context lines on each side at first, and how many each "more" button adds. */
const CONTEXT_STEP = 10;
/** The server's default `max_log_query_limit`: the context endpoint refuses more. */
const CONTEXT_MAX = 5000;
const ROW_H = 22;

interface Line {
  ns: bigint;
  tsText: string;
  line: string;
  labels: Record<string, string>;
  level: string;
  key: string;
}

export interface LogsHost {
  params: URLSearchParams;
  range(): Range;
  setRange(r: Range): void;
  save(push?: boolean): void;
  compact?: boolean;
}

function nsToMs(ns: bigint): number {
  return Number(ns / 1000000n);
}

export class LogsExplorer {
  el: HTMLElement;
  private box: QueryBox;
  private wordsInput: HTMLInputElement;
  private nsSelect: HTMLSelectElement;
  private appSelect: HTMLSelectElement;
  private generated: HTMLElement;
  private histEl = h("div", { class: "histogram", "data-testid": "histogram" });
  private summary = h("div", { class: "logs-summary" });
  private list = h("div", { class: "log-list", tabindex: "0", "data-testid": "log-list" });
  private spacer = h("div", { class: "log-spacer" });
  private rows = h("div", { class: "log-rows" });
  private drawer = h("aside", { class: "drawer", hidden: true, "data-testid": "log-detail" });
  private liveBtn: HTMLButtonElement;
  private stopBtn: HTMLButtonElement;
  private liveStatus = h("span", { class: "live-status", "data-testid": "live-status", hidden: true });
  private olderBtn: HTMLButtonElement;
  private lines: Line[] = [];
  private seen = new Set<string>();
  private hist?: Chart;
  private highlight?: RegExp;
  private abort?: AbortController;
  private live?: LiveTail;
  private exhausted = false;
  private loadingOlder = false;
  private selected = -1;
  private appLabel = "app";
  private anyLabel = "job";
  private query = "";
  /** Resolves once the words mode's pickers know their labels (the query depends on them). */
  private ready: Promise<void>;

  constructor(private host: LogsHost) {
    const p = host.params;
    this.box = queryBox({
      value: p.get("lq") ?? "",
      placeholder: '{job="varlogs"} |= "error"   — Ctrl+Enter to run',
      label: "LogQL query",
      complete: logqlCompleter,
      onRun: () => this.submit(),
    });
    this.wordsInput = h("input", {
      class: "words-input",
      type: "search",
      placeholder: 'Words to find, "exact phrase", -exclude',
      "aria-label": "words",
      value: p.get("words") ?? "",
      onkeydown: (e: Event) => {
        if ((e as KeyboardEvent).key === "Enter") this.submit();
      },
      oninput: () => this.showGenerated(),
    });
    this.nsSelect = h("select", { "aria-label": "namespace", onchange: () => this.submit() });
    this.appSelect = h("select", { "aria-label": "app", onchange: () => this.submit() });
    this.generated = h("div", { class: "generated" });
    this.liveBtn = h("button", { type: "button", class: "btn live-btn", onclick: () => this.toggleLive() }, "Live");
    this.stopBtn = h(
      "button",
      { type: "button", class: "icon-btn live-stop", title: "Stop live tail", "aria-label": "stop live tail", hidden: true, onclick: () => this.endLive() },
      "■",
    );
    this.olderBtn = h("button", { type: "button", class: "btn", onclick: () => this.loadOlder() }, "Load older");
    const mode = p.get("lmode") === "words" ? "words" : "logql";
    const modeSwitch = h(
      "div",
      { class: "seg", role: "tablist" },
      h("button", { type: "button", class: mode === "logql" ? "active" : "", onclick: () => this.setMode("logql") }, "LogQL"),
      h("button", { type: "button", class: mode === "words" ? "active" : "", onclick: () => this.setMode("words") }, "Words"),
    );
    const queryRow =
      mode === "words"
        ? h(
            "div",
            { class: "words-row" },
            h("label", { class: "field" }, h("span", {}, "Namespace"), this.nsSelect),
            h("label", { class: "field" }, h("span", { class: "app-label" }, "App"), this.appSelect),
            this.wordsInput,
          )
        : this.box.el;
    this.list.append(this.spacer, this.rows);
    this.list.addEventListener("scroll", () => this.renderRows());
    this.list.addEventListener("keydown", (e) => this.listKey(e));
    this.el = h(
      "section",
      { class: `explorer logs${host.compact ? " compact" : ""}` },
      h("div", { class: "explorer-head" }, modeSwitch, queryRow, h("div", { class: "live-ctl" }, this.liveBtn, this.stopBtn)),
      mode === "words" ? this.generated : null,
      this.histEl,
      h("div", { class: "logs-bar" }, this.summary, this.liveStatus, this.olderBtn),
      h("div", { class: "logs-body" }, this.list, this.drawer),
    );
    new ResizeObserver(() => this.renderRows()).observe(this.list);
    this.ready = mode === "words" ? this.fillPickers() : Promise.resolve();
  }

  private mode(): "logql" | "words" {
    return this.host.params.get("lmode") === "words" ? "words" : "logql";
  }

  private setMode(m: "logql" | "words"): void {
    const p = this.host.params;
    if (m === "logql" && this.mode() === "words") p.set("lq", this.currentQuery());
    p.set("lmode", m);
    this.host.save();
    rerender();
  }

  private async fillPickers(): Promise<void> {
    const names = await lokiLabels();
    this.appLabel = ["app", "container", "job", "service_name"].find((n) => names.includes(n)) ?? "job";
    // With nothing picked, match every stream by the label (nearly) all of them carry.
    this.anyLabel = ["job", "filename", "namespace", "index"].find((n) => names.includes(n)) ?? this.appLabel;
    const appLabelEl = this.el.querySelector(".app-label");
    if (appLabelEl) appLabelEl.textContent = this.appLabel;
    const fill = async (sel: HTMLSelectElement, label: string, key: string) => {
      const values = names.includes(label) ? await lokiValues(label) : [];
      const want = this.host.params.get(key) ?? "";
      clear(sel, h("option", { value: "" }, "any"), values.map((v) => h("option", { value: v, selected: v === want }, v)));
      sel.disabled = values.length === 0;
    };
    await Promise.all([fill(this.nsSelect, "namespace", "ns"), fill(this.appSelect, this.appLabel, "app")]);
    this.showGenerated();
  }

  private currentQuery(): string {
    if (this.mode() === "logql") return this.box.value();
    return wordsToLogql(
      this.wordsInput.value,
      [
        ["namespace", this.nsSelect.value],
        [this.appLabel, this.appSelect.value],
      ],
      this.anyLabel,
    );
  }

  private showGenerated(): void {
    clear(this.generated, h("span", { class: "muted" }, "LogQL: "), h("code", {}, this.currentQuery()));
  }

  /** Stores the query in the URL and runs it. */
  submit(): void {
    const p = this.host.params;
    if (this.mode() === "logql") p.set("lq", this.box.value());
    else {
      p.set("words", this.wordsInput.value);
      p.set("ns", this.nsSelect.value);
      p.set("app", this.appSelect.value);
      this.showGenerated();
    }
    this.host.save();
    void this.run();
  }

  focus(): void {
    (this.mode() === "logql" ? this.box.input : this.wordsInput).focus();
  }

  private reset(): void {
    this.lines = [];
    this.seen.clear();
    this.exhausted = false;
    this.selected = -1;
    this.drawer.hidden = true;
    this.list.scrollTop = 0;
  }

  async run(): Promise<void> {
    this.stopLive();
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    await this.ready;
    if (abort.signal.aborted) return;
    this.query = this.currentQuery();
    this.box.clearError();
    this.reset();
    this.olderBtn.hidden = true;
    this.renderRows();
    if (!this.query || this.query === "{}") {
      this.summary.textContent = "Type a LogQL query (Ctrl+Enter runs it), or switch to Words.";
      this.histEl.hidden = true;
      void this.suggestStreams();
      return;
    }
    this.highlight = highlightRegex(this.query);
    const { start, end } = resolve(this.host.range());
    this.summary.textContent = "Loading…";
    const step = stepFor(start, end, 120);
    try {
      if (isMetricQuery(this.query)) {
        const series = await lokiMetricRange(this.query, start, end, step, abort.signal);
        this.drawHistogram(series, start, end, step, true);
        this.summary.textContent = `${series.length} series (metric query)`;
        this.olderBtn.hidden = true;
        return;
      }
      // Streams carry a `level` label when the collector detects levels: split the bars by it.
      const byLevel = (await lokiLabels()).includes("level");
      const [streams, hist] = await Promise.all([
        lokiQueryRange(this.query, msToNs(start), msToNs(end), PAGE, "backward", abort.signal),
        lokiMetricRange(histogramQuery(this.query, step, byLevel ? "level" : undefined), start, end, step, abort.signal).catch(
          () => [],
        ),
      ]);
      this.drawHistogram(hist, start, end, step, false);
      this.add(streams, "append");
      this.exhausted = this.lines.length < PAGE;
      this.updateSummary(hist);
      this.renderRows(true);
    } catch (e) {
      if ((e as Error).name === "AbortError") return;
      this.summary.textContent = "";
      this.hist?.destroy();
      this.hist = undefined;
      this.histEl.hidden = true;
      this.showError(e);
    }
    if (this.host.params.get("live") === "1") this.startLive();
  }

  /** With no query yet: a few streams to start from, one click each. */
  private async suggestStreams(): Promise<void> {
    const names = await lokiLabels();
    const label = ["job", "namespace", "app", "filename"].find((n) => names.includes(n));
    if (!label) return;
    const values = (await lokiValues(label)).slice(0, 12);
    if (this.lines.length || this.query) return;
    this.rows.replaceChildren(
      h(
        "div",
        { class: "empty start" },
        h("div", {}, values.length ? `Start from a stream (${label}):` : "No logs stored yet."),
        h(
          "div",
          { class: "chips" },
          values.map((v) =>
            h(
              "button",
              {
                type: "button",
                class: "chip chip-btn",
                onclick: () => {
                  this.host.params.set("lq", `{${label}=${JSON.stringify(v)}}`);
                  this.host.params.set("lmode", "logql");
                  this.host.save();
                  rerender();
                },
              },
              v,
            ),
          ),
        ),
      ),
    );
  }

  private showError(e: unknown): void {
    if (this.mode() === "logql") this.box.showError(e);
    else clear(this.generated, h("div", { class: "query-error", role: "alert" }, (e as Error).message));
  }

  private total = 0;

  private updateSummary(hist?: { values: [number, string][] }[]): void {
    if (hist) this.total = hist.reduce((n, s) => n + s.values.reduce((m, [, v]) => m + Number(v), 0), 0);
    const shown = this.lines.length;
    const parts = [`${shown.toLocaleString()} line${shown === 1 ? "" : "s"} loaded, newest first`];
    if (this.total) parts.push(`${this.total.toLocaleString()} in range`);
    this.summary.textContent = parts.join(" · ");
    this.summary.dataset.lines = String(shown);
    this.olderBtn.hidden = this.exhausted || shown === 0;
  }

  private drawHistogram(
    series: { metric: Record<string, string>; values: [number, string][] }[],
    start: number,
    end: number,
    step: number,
    metric: boolean,
  ): void {
    this.hist?.destroy();
    this.hist = undefined;
    clear(this.histEl);
    this.histEl.hidden = false;
    const data = align(series.length ? series : [{ values: [] }], start / 1000, end / 1000, step);
    const specs = series.length
      ? series.map((s) =>
          metric
            ? { label: seriesName(s.metric) }
            : { label: s.metric.level ?? "lines", color: LEVEL_COLORS[s.metric.level ?? ""] },
        )
      : [{ label: "lines" }];
    this.hist = new Chart(this.histEl, {
      series: specs,
      data,
      kind: metric ? "line" : "bars",
      height: this.host.compact ? 130 : 140,
      legend: metric || series.length > 1,
      onSelect: (a, b) => this.host.setRange({ from: String(a), to: String(b) }),
    });
  }

  /** Adds result streams; `append` for older pages, `prepend` for live tail. */
  private add(streams: { stream: Record<string, string>; values: [string, string][] }[], where: "append" | "prepend"): number {
    const fresh: Line[] = [];
    for (const s of streams) {
      for (const [ts, line] of s.values) {
        const key = `${ts}\u0000${labelsText(s.stream)}\u0000${line}`;
        if (this.seen.has(key)) continue;
        this.seen.add(key);
        const ns = BigInt(ts);
        fresh.push({ ns, tsText: fmtTime(nsToMs(ns), true), line, labels: s.stream, level: detectLevel(s.stream, line), key });
      }
    }
    fresh.sort((a, b) => (a.ns < b.ns ? 1 : a.ns > b.ns ? -1 : 0));
    if (where === "append") this.lines.push(...fresh);
    else {
      this.lines.unshift(...fresh);
      if (this.selected >= 0) this.selected += fresh.length;
    }
    if (this.lines.length > MAX_LINES) {
      for (const l of this.lines.splice(MAX_LINES)) this.seen.delete(l.key);
    }
    this.spacer.style.height = `${this.lines.length * ROW_H}px`;
    this.renderRows(true);
    return fresh.length;
  }

  private async loadOlder(): Promise<void> {
    if (this.loadingOlder || this.exhausted || this.lines.length === 0) return;
    this.loadingOlder = true;
    this.olderBtn.textContent = "Loading…";
    const oldest = this.lines[this.lines.length - 1].ns;
    const { start } = resolve(this.host.range());
    try {
      const streams = await lokiQueryRange(this.query, msToNs(start), String(oldest + 1n), PAGE, "backward");
      const n = this.add(streams, "append");
      if (n === 0) this.exhausted = true;
    } catch (e) {
      this.showError(e);
    } finally {
      this.loadingOlder = false;
      this.olderBtn.textContent = "Load older";
      this.updateSummary();
    }
  }

  /** Live: off → live → paused (the socket stays, lines buffer) → live; ■ ends it. */
  private toggleLive(): void {
    if (!this.live) {
      this.host.params.set("live", "1");
      this.host.save(false);
      this.startLive();
    } else if (this.live.isPaused()) this.live.resume();
    else this.live.pause();
  }

  private endLive(): void {
    this.stopLive();
    this.host.params.delete("live");
    this.host.save(false);
  }

  private startLive(): void {
    if (this.live || !this.query || isMetricQuery(this.query)) return;
    this.live = new LiveTail(
      this.query,
      () => this.lines[0]?.ns,
      (streams) => {
        if (this.add(streams, "prepend") > 0) this.updateSummary();
      },
      (s) => this.showLive(s),
    );
  }

  private showLive(s: LiveState): void {
    const btn = this.liveBtn;
    btn.classList.add("on");
    btn.classList.toggle("paused", s.kind === "paused" || !!this.live?.isPaused());
    btn.classList.toggle("waiting", s.kind === "retrying" || s.kind === "connecting");
    if (s.kind === "paused") btn.textContent = `Resume · ${s.buffered.toLocaleString()} buffered`;
    else if (!this.live?.isPaused()) btn.textContent = "Pause";
    this.stopBtn.hidden = false;
    const st = this.liveStatus;
    st.hidden = false;
    st.dataset.state = s.kind;
    st.className = `live-status live-${s.kind}`;
    if (s.kind === "live") st.textContent = "● live";
    else if (s.kind === "connecting") st.textContent = "connecting…";
    else if (s.kind === "paused")
      st.textContent = `paused${s.dropped ? ` · ${s.dropped.toLocaleString()} older dropped (buffer keeps the newest ${MAX_BUFFERED.toLocaleString()})` : ""}`;
    else if (s.kind === "retrying")
      st.textContent = `${s.refused ? "refused by the server" : "disconnected"}: ${s.why} · retrying in ${Math.ceil(s.inMs / 1000)} s`;
    else {
      st.textContent = `live tail failed: ${s.why}`;
      this.stopLive(true);
    }
  }

  /** Closes the socket; `keepStatus` leaves the failure message visible. */
  private stopLive(keepStatus = false): void {
    this.live?.stop();
    this.live = undefined;
    this.liveBtn.classList.remove("on", "paused");
    this.liveBtn.textContent = "Live";
    this.stopBtn.hidden = true;
    if (!keepStatus) this.liveStatus.hidden = true;
  }

  private raf = 0;

  private renderRows(now = false): void {
    if (!now) {
      cancelAnimationFrame(this.raf);
      this.raf = requestAnimationFrame(() => this.renderRows(true));
      return;
    }
    const top = this.list.scrollTop;
    const height = this.list.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_H) - 10);
    const last = Math.min(this.lines.length, Math.ceil((top + height) / ROW_H) + 10);
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) frag.appendChild(this.row(i));
    this.rows.replaceChildren(frag);
    if (this.lines.length === 0 && this.query && this.summary.textContent !== "Loading…") {
      this.rows.replaceChildren(h("div", { class: "empty" }, "No lines match in this time range."));
    }
    if (last >= this.lines.length - 5 && !this.exhausted && this.lines.length >= PAGE) void this.loadOlder();
  }

  private row(i: number): HTMLElement {
    const l = this.lines[i];
    const el = h(
      "div",
      {
        class: `log-row lvl-${l.level}${i === this.selected ? " selected" : ""}`,
        "data-index": i,
        onclick: () => this.select(i),
      },
      h("span", { class: "log-ts" }, l.tsText.slice(11)),
      h("span", { class: "log-line" }, this.marked(l.line)),
    );
    el.style.top = `${i * ROW_H}px`;
    return el;
  }

  private marked(text: string): (string | HTMLElement)[] {
    const re = this.highlight;
    const t = text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
    if (!re) return [t];
    const out: (string | HTMLElement)[] = [];
    let last = 0;
    re.lastIndex = 0;
    let m: RegExpExecArray | null;
    while ((m = re.exec(t))) {
      if (m[0] === "") {
        re.lastIndex++;
        continue;
      }
      out.push(t.slice(last, m.index), h("mark", {}, m[0]));
      last = m.index + m[0].length;
    }
    out.push(t.slice(last));
    return out;
  }

  private listKey(e: KeyboardEvent): void {
    if (e.key === "ArrowDown" || e.key === "j") this.select(Math.min(this.lines.length - 1, this.selected + 1));
    else if (e.key === "ArrowUp" || e.key === "k") this.select(Math.max(0, this.selected - 1));
    else if (e.key === "Escape") this.closeDrawer();
    else return;
    e.preventDefault();
    const y = this.selected * ROW_H;
    if (y < this.list.scrollTop || y > this.list.scrollTop + this.list.clientHeight - ROW_H) this.list.scrollTop = y - 100;
  }

  private closeDrawer(): void {
    this.drawer.hidden = true;
    this.selected = -1;
    this.renderRows();
  }

  private filter(name: string, value: string, negate: boolean, parsed?: "json" | "logfmt"): void {
    const p = this.host.params;
    const q = addFilter(this.currentQuery(), name, value, negate, parsed);
    p.set("lq", q);
    p.set("lmode", "logql");
    this.host.save();
    rerender();
  }

  private select(i: number): void {
    if (i < 0 || i >= this.lines.length) return;
    this.selected = i;
    this.renderRows();
    const l = this.lines[i];
    const fields = parseFields(l.line);
    const filterButtons = (k: string, v: string, parsed?: "json" | "logfmt") =>
      h(
        "td",
        { class: "filter-btns" },
        h("button", { type: "button", class: "icon-btn", title: `Filter ${k}="${v}"`, onclick: () => this.filter(k, v, false, parsed) }, "="),
        h("button", { type: "button", class: "icon-btn", title: `Exclude ${k}="${v}"`, onclick: () => this.filter(k, v, true, parsed) }, "≠"),
      );
    const context = h("div", { class: "context" });
    clear(
      this.drawer,
      h(
        "div",
        { class: "drawer-head" },
        h("strong", {}, l.tsText),
        h("span", { class: `badge lvl-${l.level}` }, l.level),
        h("button", { type: "button", class: "icon-btn close", title: "Close (Esc)", onclick: () => this.closeDrawer() }, "×"),
      ),
      h("pre", { class: "detail-line" }, this.marked(l.line)),
      h(
        "div",
        { class: "drawer-actions" },
        h("button", { type: "button", class: "btn", "data-testid": "show-context", onclick: () => this.showContext(l, context) }, "Show context"),
        h("button", { type: "button", class: "btn", onclick: () => void navigator.clipboard?.writeText(l.line) }, "Copy line"),
      ),
      context,
      h("h4", {}, "Labels"),
      h(
        "table",
        { class: "kv" },
        Object.entries(l.labels)
          .sort(([a], [b]) => a.localeCompare(b))
          .map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v), filterButtons(k, v))),
      ),
      fields
        ? [
            h("h4", {}, `Fields (${fields.kind})`),
            h("table", { class: "kv" }, fields.fields.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v), filterButtons(k, v, fields.kind)))),
          ]
        : null,
    );
    this.drawer.hidden = false;
  }

  /** The lines around `l` in its stream; "more before/after" widen the window by CONTEXT_STEP. */
  private async showContext(l: Line, into: HTMLElement, before = CONTEXT_STEP, after = CONTEXT_STEP, grew?: "before" | "after"): Promise<void> {
    if (!grew) clear(into, h("div", { class: "muted" }, "Loading context…"));
    try {
      const body = await request(`/api/v1/logs/context?${qs({ stream: labelsText(l.labels), time: l.ns.toString(), before, after })}`);
      const d = body.data as { before: [string, string][]; at: [string, string][]; after: [string, string][] };
      const row = (cls: string) => ([ts, line]: [string, string]) =>
        h("div", { class: `ctx-line ${cls}` }, h("span", { class: "log-ts" }, fmtTime(nsToMs(BigInt(ts)), true).slice(11)), h("span", {}, line));
      // Fewer lines than asked for: the stream (or the store) ends there.
      const more = (side: "before" | "after", got: number, asked: number) =>
        h(
          "button",
          {
            type: "button",
            class: "btn small ctx-more",
            "data-testid": `context-more-${side}`,
            disabled: got < asked || asked >= CONTEXT_MAX,
            onclick: () =>
              void this.showContext(l, into, side === "before" ? before + CONTEXT_STEP : before, side === "after" ? after + CONTEXT_STEP : after, side),
          },
          got < asked ? (side === "before" ? "Start of stream" : "End of stream") : side === "before" ? `▲ ${CONTEXT_STEP} more before` : `▼ ${CONTEXT_STEP} more after`,
        );
      const ctx = h(
        "div",
        { class: "ctx", "data-testid": "context", "data-before": d.before.length, "data-after": d.after.length },
        d.before.map(row("before")),
        d.at.map(row("at")),
        d.after.map(row("after")),
      );
      clear(
        into,
        h("div", { class: "ctx-head" }, h("h4", {}, "Context"), h("span", { class: "muted small" }, `${d.before.length} before · ${d.after.length} after`)),
        more("before", d.before.length, before),
        ctx,
        more("after", d.after.length, after),
      );
      if (grew === "before") ctx.scrollTop = 0;
      else if (grew === "after") ctx.scrollTop = ctx.scrollHeight;
      else ctx.querySelector(".ctx-line.at")?.scrollIntoView({ block: "center" });
    } catch (e) {
      clear(into, h("div", { class: "query-error" }, e instanceof ApiError ? e.message : String(e)));
    }
  }

  destroy(): void {
    this.stopLive();
    this.abort?.abort();
    this.hist?.destroy();
  }
}
