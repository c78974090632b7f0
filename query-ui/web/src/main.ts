// The app shell: top navigation, theme (follows prefers-color-scheme until the user picks one),
// global keys (`/` focuses the query box, `?` lists shortcuts) and the page router reading
// `#/<page>?<state>` from the URL.

import "./style.css";
import { h, clear } from "./dom";
import { current, update, href } from "./route";
import { picker, rangeFrom, setRange, isRelative, type Range } from "./time";
import { LogsExplorer } from "./logs";
import { MetricsExplorer } from "./metrics";
import { alertsPage } from "./alerts";
import { statusPage } from "./status";
import { dashboardsPage } from "./dashboards";
import { request, setTenant, tenant, token, setToken, LOGIN_EVENT } from "./api";

interface Page {
  destroy?(): void;
  focus?(): void;
}

const PAGES: [string, string][] = [
  ["logs", "Logs"],
  ["metrics", "Metrics"],
  ["split", "Split"],
  ["dashboards", "Dashboards"],
  ["alerts", "Alerts"],
  ["status", "Status"],
];

const app = document.getElementById("app")!;
let page: Page | undefined;

function theme(): "dark" | "light" {
  const saved = localStorage.getItem("tarsier-theme");
  if (saved === "dark" || saved === "light") return saved;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function applyTheme(): void {
  document.documentElement.dataset.theme = theme();
}

function toggleTheme(): void {
  localStorage.setItem("tarsier-theme", theme() === "dark" ? "light" : "dark");
  applyTheme();
  render();
}

/** The explorer host: shared URL params and time range for the logs/metrics/split pages. */
function explorerPage(kind: string, body: HTMLElement): Page {
  const params = current().params;
  const host = {
    params,
    compact: kind === "split",
    range: () => rangeFrom(params),
    setRange: (r: Range) => {
      setRange(params, r);
      update(params);
      render();
    },
    save: (push = true) => update(params, push),
  };
  const logs = kind !== "metrics" ? new LogsExplorer(host) : undefined;
  const metrics = kind !== "logs" ? new MetricsExplorer(host) : undefined;
  const runAll = () => {
    logs?.submit();
    metrics?.submit();
  };
  const r = host.range();
  const toolbar = h(
    "div",
    { class: "toolbar" },
    h("h1", { class: "page-title" }, PAGES.find(([p]) => p === kind)?.[1] ?? kind),
    h("span", { class: "grow" }),
    picker(r, (nr) => host.setRange(nr)),
    h(
      "button",
      { type: "button", class: "btn", title: "Re-run with the range ending now", hidden: isRelative(r), onclick: () => host.setRange({ from: "now-1h", to: "now" }) },
      "Now",
    ),
    h("button", { type: "button", class: "btn primary run-btn", title: "Run (Ctrl+Enter)", onclick: runAll }, "Run"),
  );
  if (kind === "split") {
    body.append(toolbar, h("div", { class: "split" }, metrics!.el, logs!.el));
  } else {
    body.append(toolbar, (logs ?? metrics)!.el);
  }
  void logs?.run();
  void metrics?.run();
  return {
    destroy: () => {
      logs?.destroy();
      metrics?.destroy();
    },
    focus: () => (logs ?? metrics)?.focus(),
  };
}

function render(): void {
  page?.destroy?.();
  page = undefined;
  lastHash = location.hash;
  const route = current();
  const params = route.params;
  setTenant(params.get("tenant") ?? "");
  const keep = new URLSearchParams();
  for (const k of ["from", "to"]) if (params.get(k)) keep.set(k, params.get(k)!);
  const nav = h(
    "nav",
    { class: "nav" },
    PAGES.map(([p, label]) => {
      const link = new URLSearchParams(keep);
      if (["logs", "metrics", "split"].includes(p) && ["logs", "metrics", "split"].includes(route.page)) {
        for (const [k, v] of params) if (!link.has(k) || k === "mq") link.append(k, v);
      }
      return h("a", { href: href(p, link), class: p === route.page ? "active" : "", "data-page": p }, label);
    }),
  );
  const body = h("main", { class: `page page-${route.page}` });
  clear(
    app,
    h(
      "header",
      { class: "topbar" },
      h("a", { class: "brand", href: "#/logs" }, h("span", { class: "logo" }), "Tarsier"),
      nav,
      h("span", { class: "grow" }),
      tenantPicker(),
      token()
        ? h("a", { href: "#", class: "sign-out", "data-testid": "sign-out", title: "Forget the API token in this tab", onclick: signOut }, "Sign out")
        : null,
      h(
        "button",
        { type: "button", class: "icon-btn theme-btn", title: "Toggle dark/light theme", "aria-label": "toggle theme", onclick: toggleTheme },
        theme() === "dark" ? "☀" : "☾",
      ),
      h("button", { type: "button", class: "icon-btn", title: "Keyboard shortcuts (?)", onclick: showHelp }, "?"),
    ),
    body,
  );
  switch (route.page) {
    case "logs":
    case "metrics":
    case "split":
      page = explorerPage(route.page, body);
      break;
    case "alerts":
      page = alertsPage(body);
      break;
    case "status":
      page = statusPage(body, params);
      break;
    case "dashboards":
      page = dashboardsPage(body, params);
      break;
    default:
      body.append(h("div", { class: "empty" }, `No page "${route.page}".`));
  }
}

/** The tenant every request names (`X-Scope-OrgID`), shown once the stores know more than one. */
function tenantPicker(): HTMLElement {
  const sel = h("select", {
    "aria-label": "tenant",
    "data-testid": "tenant",
    onchange: () => {
      const r = current();
      const t = sel.value === "default" ? "" : sel.value;
      if (t) r.params.set("tenant", t);
      else r.params.delete("tenant");
      setTenant(t);
      location.hash = href(r.page, r.params);
    },
  });
  const wrap = h("label", { class: "tenant-pick", title: "Tenant: sent as X-Scope-OrgID with every query", hidden: true }, h("span", {}, "Tenant"), sel);
  const chosen = tenant() || "default";
  request("/api/v1/status/tenants")
    .then((body) => {
      const list = body.data as { id: string; logs: boolean; metrics: boolean }[];
      if (!list.some((t) => t.id === chosen)) list.push({ id: chosen, logs: false, metrics: false });
      const what = (t: { logs: boolean; metrics: boolean }) => [t.logs && "logs", t.metrics && "metrics"].filter(Boolean).join(" + ") || "empty";
      clear(sel, list.map((t) => h("option", { value: t.id, selected: t.id === chosen }, `${t.id} (${what(t)})`)));
      wrap.hidden = list.length < 2;
    })
    .catch(() => {});
  return wrap;
}

function signOut(e: Event): void {
  e.preventDefault();
  setToken("");
  render();
}

/** The sign-in form shown when an API answers 401 (server.auth): the token is kept in
 * sessionStorage (this tab only) and sent as `Authorization: Bearer` with every request. */
function showLogin(why: string): void {
  if (document.querySelector(".login-back")) return;
  const input = h("input", { type: "password", name: "token", autocomplete: "current-password", "aria-label": "API token", "data-testid": "login-token", required: true }) as HTMLInputElement;
  const form = h(
    "form",
    {
      class: "modal login",
      role: "dialog",
      "aria-label": "Sign in",
      "data-testid": "login",
      onsubmit: (e: Event) => {
        e.preventDefault();
        setToken(input.value.trim());
        dlg.remove();
        render();
      },
    },
    h("h3", {}, "Sign in"),
    h("p", { class: "muted" }, token() ? `The token was refused: ${why}` : "This server needs an API token."),
    h("label", {}, h("span", {}, "API token "), input),
    h("button", { type: "submit", class: "btn primary" }, "Sign in"),
  );
  const dlg = h("div", { class: "modal-back login-back" }, form);
  document.body.append(dlg);
  input.focus();
}

window.addEventListener(LOGIN_EVENT, (e) => showLogin(String((e as CustomEvent).detail ?? "")));

function showHelp(): void {
  const close = () => dlg.remove();
  const dlg = h(
    "div",
    { class: "modal-back", onclick: (e: Event) => e.target === dlg && close() },
    h(
      "div",
      { class: "modal", role: "dialog", "aria-label": "Keyboard shortcuts" },
      h("h3", {}, "Keyboard shortcuts"),
      h(
        "table",
        { class: "kv" },
        [
          ["/", "Focus the query box"],
          ["Ctrl+Enter / Enter", "Run the query (Shift+Enter: new line)"],
          ["Tab / ↑ ↓", "Accept / move in suggestions"],
          ["j / k, ↑ ↓", "Next / previous log line (in the list)"],
          ["Esc", "Close suggestions, details, dialogs"],
          ["g l / g m / g s / g d / g a", "Go to logs, metrics, split, dashboards, alerts"],
        ].map(([k, v]) => h("tr", {}, h("th", {}, h("kbd", {}, k)), h("td", {}, v))),
      ),
      h("button", { type: "button", class: "btn", onclick: close }, "Close"),
    ),
  );
  document.body.append(dlg);
}

let pendingG = false;
document.addEventListener("keydown", (e) => {
  const t = e.target as HTMLElement;
  const typing = t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement;
  if (e.key === "Escape") document.querySelector(".modal-back")?.remove();
  if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "/") {
    e.preventDefault();
    page?.focus?.();
  } else if (e.key === "?") {
    showHelp();
  } else if (pendingG) {
    pendingG = false;
    const map: Record<string, string> = { l: "logs", m: "metrics", s: "split", d: "dashboards", a: "alerts" };
    if (map[e.key]) location.hash = href(map[e.key]);
  } else if (e.key === "g") {
    pendingG = true;
    setTimeout(() => (pendingG = false), 1000);
  }
});

matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
  applyTheme();
  render();
});
let lastHash = "";
const onNavigate = () => {
  if (location.hash !== lastHash) render();
};
window.addEventListener("hashchange", onNavigate);
window.addEventListener("popstate", onNavigate);
window.addEventListener("tarsier:render", () => render());
applyTheme();
render();
