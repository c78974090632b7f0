// Tiny DOM helpers: the UI builds elements with h() instead of a framework, never with innerHTML
// from data (every server string becomes a text node).

type Attrs = Record<string, string | number | boolean | EventListener | undefined | null>;
export type Child = Node | string | number | null | undefined | false | Child[];

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2).toLowerCase(), v as EventListener);
    } else if (k === "class") {
      el.className = String(v);
    } else if (k === "value" && "value" in el) {
      (el as HTMLInputElement).value = String(v);
    } else if (v === true) {
      el.setAttribute(k, "");
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

export function append(el: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

export function clear(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, children);
}

/** A label set as `{a="b", c="d"}`. */
export function labelsText(labels: Record<string, string>, skipName = false): string {
  const parts = Object.entries(labels)
    .filter(([k]) => !(skipName && k === "__name__"))
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `{${parts.join(", ")}}`;
}

/** Prometheus-style series name: `metric{labels}`. */
export function seriesName(metric: Record<string, string>): string {
  const name = metric.__name__ ?? "";
  const rest = Object.keys(metric).filter((k) => k !== "__name__").length;
  return rest === 0 && name ? name : name + labelsText(metric, true);
}

export function fmtTime(ms: number, withMs = false): string {
  const d = new Date(ms);
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  const s = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return withMs ? `${s}.${p(d.getMilliseconds(), 3)}` : s;
}

export function fmtNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return Number(v.toPrecision(6)).toLocaleString(undefined, { maximumFractionDigits: 4 });
}

export function fmtBytes(v: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${fmtNumber(v)} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function debounce<A extends unknown[]>(f: (...a: A) => void, ms: number): (...a: A) => void {
  let t: number | undefined;
  return (...a: A) => {
    clearTimeout(t);
    t = window.setTimeout(() => f(...a), ms);
  };
}

/** A segmented control: one button per `[value, label]`, the current one active. */
export function segmented(options: [string, string][], currentValue: string, pick: (value: string) => void): HTMLElement {
  return h(
    "div",
    { class: "seg" },
    options.map(([v, label]) =>
      h("button", { type: "button", class: v === currentValue ? "active" : "", "data-value": v, onclick: () => pick(v) }, label),
    ),
  );
}

/** Re-renders the current page from the URL (main.ts listens). */
export function rerender(): void {
  window.dispatchEvent(new Event("tarsier:render"));
}

/** A dialog over the page with `actions` and a Cancel button; returns its close function. */
export function modal(title: string, content: HTMLElement, actions: HTMLElement[]): () => void {
  const close = () => back.remove();
  const back = h(
    "div",
    { class: "modal-back", onclick: (e: Event) => e.target === back && close() },
    h("div", { class: "modal wide", role: "dialog", "aria-label": title }, h("h3", {}, title), content, h("div", { class: "actions" }, actions, h("button", { type: "button", class: "btn", onclick: close }, "Cancel"))),
  );
  document.body.append(back);
  return close;
}

/** A `table.data`: a header row (a `num` class right-aligns a column) and the given `tr`s. */
export function dataTable(head: string[], rows: Child[], numeric: number[] = []): HTMLElement {
  return h(
    "table",
    { class: "data" },
    h("thead", {}, h("tr", {}, head.map((t, i) => h("th", { class: numeric.includes(i) ? "num" : "" }, t)))),
    h("tbody", {}, rows),
  );
}

/** `dataTable` over `items`, or a muted line saying there are none. */
export function tableOr<T>(items: T[], none: string, head: string[], row: (item: T) => HTMLElement): HTMLElement {
  return items.length === 0 ? h("div", { class: "empty" }, none) : dataTable(head, items.map(row));
}
