// Time ranges as the URL stores them: `from`/`to` are either relative (`now-1h`, `now`) or
// absolute epoch milliseconds. The picker offers presets from 5 minutes to 30 days and
// absolute start/end fields; charts set absolute ranges when the user drags across them.

import { h, fmtTime } from "./dom";

export interface Range {
  from: string;
  to: string;
}

export const PRESETS: [string, string][] = [
  ["5m", "Last 5 minutes"],
  ["15m", "Last 15 minutes"],
  ["1h", "Last 1 hour"],
  ["3h", "Last 3 hours"],
  ["6h", "Last 6 hours"],
  ["12h", "Last 12 hours"],
  ["24h", "Last 24 hours"],
  ["2d", "Last 2 days"],
  ["7d", "Last 7 days"],
  ["30d", "Last 30 days"],
];

const UNIT_MS: Record<string, number> = { s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5 };

export function parseDuration(d: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(d.trim());
  return m ? Number(m[1]) * UNIT_MS[m[2]] : undefined;
}

function resolvePoint(p: string, now: number): number {
  if (p === "now" || p === "") return now;
  const rel = /^now-(.+)$/.exec(p);
  if (rel) return now - (parseDuration(rel[1]) ?? 36e5);
  const n = Number(p);
  if (Number.isFinite(n)) return n;
  const t = Date.parse(p);
  return Number.isFinite(t) ? t : now;
}

export function rangeFrom(params: URLSearchParams): Range {
  return { from: params.get("from") || "now-1h", to: params.get("to") || "now" };
}

export function setRange(params: URLSearchParams, r: Range): void {
  params.set("from", r.from);
  params.set("to", r.to);
}

export function resolve(r: Range, now = Date.now()): { start: number; end: number } {
  const start = resolvePoint(r.from, now);
  const end = resolvePoint(r.to, now);
  return start <= end ? { start, end } : { start: end, end: start };
}

export function isRelative(r: Range): boolean {
  return r.to === "now" && r.from.startsWith("now-");
}

export function describe(r: Range): string {
  if (r.to === "now") {
    const preset = PRESETS.find(([d]) => `now-${d}` === r.from);
    if (preset) return preset[1];
    if (r.from.startsWith("now-")) return `Last ${r.from.slice(4)}`;
  }
  const { start, end } = resolve(r);
  return `${fmtTime(start)} → ${fmtTime(end)}`;
}

/** A step giving about `points` points over the range, in whole seconds. */
export function stepFor(startMs: number, endMs: number, points = 200): number {
  return Math.max(1, Math.ceil((endMs - startMs) / 1000 / points));
}

function toLocalInput(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 6e4);
  return d.toISOString().slice(0, 19);
}

/** The range button with its dropdown; `onPick` gets the new range. */
export function picker(range: Range, onPick: (r: Range) => void): HTMLElement {
  const wrap = h("div", { class: "picker" });
  const button = h(
    "button",
    { type: "button", class: "btn picker-btn", "aria-haspopup": "true", title: "Time range" },
    h("span", { class: "icon-clock" }),
    describe(range),
  );
  const { start, end } = resolve(range);
  const fromIn = h("input", { type: "datetime-local", step: "1", value: toLocalInput(start), "aria-label": "from" });
  const toIn = h("input", { type: "datetime-local", step: "1", value: toLocalInput(end), "aria-label": "to" });
  const pop = h(
    "div",
    { class: "picker-pop", hidden: true },
    h(
      "div",
      { class: "picker-presets" },
      PRESETS.map(([d, label]) =>
        h(
          "button",
          {
            type: "button",
            class: `preset${range.from === `now-${d}` && range.to === "now" ? " active" : ""}`,
            "data-range": d,
            onclick: () => {
              pop.hidden = true;
              onPick({ from: `now-${d}`, to: "now" });
            },
          },
          label,
        ),
      ),
    ),
    h(
      "form",
      {
        class: "picker-abs",
        onsubmit: (e: Event) => {
          e.preventDefault();
          const a = new Date(fromIn.value).getTime();
          const b = new Date(toIn.value).getTime();
          if (!Number.isFinite(a) || !Number.isFinite(b) || a >= b) return;
          pop.hidden = true;
          onPick({ from: String(a), to: String(b) });
        },
      },
      h("div", { class: "picker-title" }, "Absolute range"),
      h("label", {}, "From", fromIn),
      h("label", {}, "To", toIn),
      h("button", { type: "submit", class: "btn primary" }, "Apply"),
    ),
  );
  button.addEventListener("click", () => {
    pop.hidden = !pop.hidden;
  });
  document.addEventListener("mousedown", (e) => {
    if (!wrap.contains(e.target as Node)) pop.hidden = true;
  });
  wrap.append(button, pop);
  return wrap;
}
