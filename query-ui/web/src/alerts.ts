// The alerts page: firing alerts grouped as the notifier groups them (silence one with its labels
// prefilled), alerting and recording rules with state and last evaluation, silences (create,
// expire) and the recent notifications with their delivery result.

import { h, clear, fmtTime, tableOr } from "./dom";
import { request } from "./api";

interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  fingerprint: string;
  status: { state: string; silencedBy: string[]; inhibitedBy: string[] };
}
interface Group {
  labels: Record<string, string>;
  receiver: { name: string };
  alerts: AmAlert[];
}
interface Matcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual?: boolean;
}
interface Silence {
  id: string;
  matchers: Matcher[];
  startsAt: string;
  endsAt: string;
  createdBy: string;
  comment: string;
  status: { state: string };
}

const ago = (iso: string) => {
  const t = Date.parse(iso);
  if (!Number.isFinite(t) || t < 86400000) return "never";
  const s = Math.round((Date.now() - t) / 1000);
  if (s < 0) return `in ${fmtDur(-s)}`;
  return `${fmtDur(s)} ago`;
};
function fmtDur(s: number): string {
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.round(s / 60)}m`;
  if (s < 86400) return `${(s / 3600).toFixed(1)}h`;
  return `${(s / 86400).toFixed(1)}d`;
}

function labelChips(labels: Record<string, string>): HTMLElement {
  return h(
    "span",
    { class: "chips" },
    Object.entries(labels)
      .sort(([a], [b]) => (a === "alertname" ? -1 : b === "alertname" ? 1 : a.localeCompare(b)))
      .map(([k, v]) => h("span", { class: "chip" }, h("span", { class: "chip-k" }, k), "=", v)),
  );
}

export function matchersText(ms: Matcher[]): string {
  return ms
    .map((m) => {
      const neg = m.isEqual === false;
      const op = m.isRegex ? (neg ? "!~" : "=~") : neg ? "!=" : "=";
      return `${m.name}${op}${JSON.stringify(m.value)}`;
    })
    .join(", ");
}

/** `a="b", c=~"d.*", e!="f"` → API matchers. */
export function parseMatchers(text: string): Matcher[] {
  const out: Matcher[] = [];
  const re = /\s*([A-Za-z_][\w]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^,\s]+)\s*(,|$)/gy;
  let m: RegExpExecArray | null;
  let last = 0;
  while (last < text.length && (m = re.exec(text))) {
    const raw = m[3].startsWith('"') ? JSON.parse(m[3]) : m[3];
    out.push({ name: m[1], value: raw, isRegex: m[2].includes("~"), isEqual: !m[2].startsWith("!") });
    last = re.lastIndex;
  }
  if (text.trim() && last < text.trim().length) throw new Error(`cannot read matchers after: ${text.slice(last)}`);
  return out;
}

export function alertsPage(body: HTMLElement) {
  const groupsEl = h("div", { class: "card-body", "data-testid": "alert-groups" });
  const rulesEl = h("div", { class: "card-body" });
  const silencesEl = h("div", { class: "card-body", "data-testid": "silences" });
  const notesEl = h("div", { class: "card-body" });
  const formEl = h("div", {});
  let amAvailable = true;

  const card = (title: string, el: HTMLElement, extra?: HTMLElement) =>
    h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, title), h("span", { class: "grow" }), extra), el);

  const silenceForm = (labels: Record<string, string>) => {
    const matchers = h("input", {
      class: "wide mono",
      name: "matchers",
      "aria-label": "matchers",
      value: Object.entries(labels)
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(", "),
    });
    const duration = h(
      "select",
      { name: "duration", "aria-label": "duration" },
      ["1h", "2h", "4h", "12h", "1d", "7d"].map((d) => h("option", { value: d, selected: d === "2h" }, d)),
    );
    const by = h("input", { name: "createdBy", "aria-label": "created by", value: localStorage.getItem("tarsier-user") ?? "" , placeholder: "you@example.com" });
    const comment = h("input", { class: "wide", name: "comment", "aria-label": "comment", placeholder: "Why (required)" });
    const err = h("div", { class: "query-error", hidden: true });
    const units: Record<string, number> = { h: 3600e3, d: 86400e3 };
    const form = h(
      "form",
      {
        class: "card silence-form",
        "data-testid": "silence-form",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          err.hidden = true;
          try {
            const ms = parseMatchers(matchers.value);
            if (ms.length === 0) throw new Error("a silence needs at least one matcher");
            if (!comment.value.trim()) throw new Error("say why in the comment");
            const d = duration.value;
            const len = Number(d.slice(0, -1)) * units[d.slice(-1)];
            localStorage.setItem("tarsier-user", by.value);
            await request("/api/v2/silences", {
              method: "POST",
              headers: { "content-type": "application/json" },
              body: JSON.stringify({
                matchers: ms,
                startsAt: new Date().toISOString(),
                endsAt: new Date(Date.now() + len).toISOString(),
                createdBy: by.value || "tarsier-ui",
                comment: comment.value,
              }),
            });
            clear(formEl);
            await load();
          } catch (e2) {
            err.textContent = (e2 as Error).message;
            err.hidden = false;
          }
        },
      },
      h("div", { class: "card-head" }, h("h2", {}, "New silence")),
      h(
        "div",
        { class: "form-grid" },
        h("label", {}, "Matchers", matchers),
        h("label", {}, "Duration", duration),
        h("label", {}, "Created by", by),
        h("label", {}, "Comment", comment),
      ),
      err,
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit", class: "btn primary" }, "Create silence"),
        h("button", { type: "button", class: "btn", onclick: () => clear(formEl) }, "Cancel"),
      ),
    );
    clear(formEl, form);
    comment.focus();
  };

  const load = async () => {
    const [groups, rules, silences, notes] = await Promise.allSettled([
      request("/api/v2/alerts/groups"),
      request("/api/v1/rules"),
      request("/api/v2/silences"),
      request("/api/v2/notifications"),
    ]);
    amAvailable = groups.status === "fulfilled";
    const off = h("div", { class: "empty" }, "Notifications are off: set alerting.notifications_file to group alerts, silence them and deliver notifications.");
    if (groups.status === "fulfilled") {
      const gs = groups.value as Group[];
      clear(
        groupsEl,
        gs.length === 0
          ? h("div", { class: "empty" }, "No alerts firing.")
          : gs.map((g) =>
              h(
                "div",
                { class: "group" },
                h("div", { class: "group-head" }, labelChips(g.labels), h("span", { class: "muted" }, `→ ${g.receiver.name}`)),
                g.alerts.map((a) =>
                  h(
                    "div",
                    { class: `alert-row state-${a.status.state}` },
                    h("span", { class: `badge st-${a.status.state}` }, a.status.state),
                    h("div", { class: "alert-main" }, labelChips(a.labels), a.annotations.summary ? h("div", { class: "muted" }, a.annotations.summary) : null),
                    h("span", { class: "muted nowrap" }, `since ${ago(a.startsAt)}`),
                    h("button", { type: "button", class: "btn small", "data-testid": "silence-alert", onclick: () => silenceForm(a.labels) }, "Silence"),
                  ),
                ),
              ),
            ),
      );
    } else clear(groupsEl, off);
    if (rules.status === "fulfilled") {
      const groupsR = rules.value.data.groups as { name: string; file: string; rules: any[]; lastEvaluation?: string }[];
      const rows = groupsR.flatMap((g) => g.rules.map((r) => ({ g, r })));
      clear(
        rulesEl,
        tableOr(rows, "No rules loaded (alerting.rule_files).", ["Rule", "Group", "State", "Health", "Last evaluation", "Took"], ({ g, r }) =>
          h(
            "tr",
            {},
            h("td", {}, h("div", { class: "strong" }, r.name), h("code", { class: "small muted" }, r.query)),
            h("td", {}, g.name),
            h("td", {}, h("span", { class: `badge st-${r.state ?? r.type}` }, r.type === "alerting" ? r.state : "recording")),
            h("td", {}, h("span", { class: `badge health-${r.health}` }, r.health), r.lastError ? h("div", { class: "query-error small" }, r.lastError) : null),
            h("td", { class: "nowrap" }, r.lastEvaluation ? ago(r.lastEvaluation) : "never"),
            h("td", { class: "num" }, r.evaluationTime !== undefined ? `${(r.evaluationTime * 1000).toFixed(1)} ms` : ""),
          ),
        ),
      );
    }
    if (silences.status === "fulfilled") {
      const ss = (silences.value as Silence[]).sort((a, b) => a.status.state.localeCompare(b.status.state));
      clear(
        silencesEl,
        tableOr(ss, "No silences.", ["Matchers", "State", "Ends", "Created by", "Comment", ""], (s) =>
          h(
            "tr",
            { "data-silence": s.id, "data-state": s.status.state },
            h("td", { class: "mono small" }, matchersText(s.matchers)),
            h("td", {}, h("span", { class: `badge sil-${s.status.state}` }, s.status.state)),
            h("td", { class: "nowrap" }, fmtTime(Date.parse(s.endsAt))),
            h("td", {}, s.createdBy),
            h("td", {}, s.comment),
            h(
              "td",
              {},
              s.status.state !== "expired"
                ? h(
                    "button",
                    {
                      type: "button",
                      class: "btn small danger",
                      "data-testid": "expire-silence",
                      onclick: async () => {
                        await request(`/api/v2/silence/${encodeURIComponent(s.id)}`, { method: "DELETE" });
                        await load();
                      },
                    },
                    "Expire",
                  )
                : null,
            ),
          ),
        ),
      );
    } else clear(silencesEl, off.cloneNode(true));
    if (notes.status === "fulfilled") {
      const ns = notes.value as any[];
      clear(
        notesEl,
        tableOr(ns.slice(0, 100), "No notifications sent yet.", ["Time", "Receiver", "Integration", "Group", "Alerts", "Result"], (n) =>
          h(
            "tr",
            {},
            h("td", { class: "nowrap" }, fmtTime(Date.parse(n.at))),
            h("td", {}, n.receiver),
            h("td", {}, n.integration),
            h("td", { class: "mono small" }, n.groupKey),
            h("td", { class: "num" }, `${n.firing} firing, ${n.resolved} resolved`),
            h("td", {}, n.error ? h("span", { class: "badge st-firing", title: n.error }, `failed after ${n.attempts}: ${n.error}`) : h("span", { class: "badge health-ok" }, "delivered")),
          ),
        ),
      );
    } else clear(notesEl, off.cloneNode(true));
  };

  body.append(
    h("div", { class: "toolbar" }, h("h1", { class: "page-title" }, "Alerts"), h("span", { class: "grow" }), h("button", { type: "button", class: "btn", onclick: () => load() }, "Refresh")),
    formEl,
    h(
      "div",
      { class: "cards" },
      card("Firing alerts", groupsEl),
      card("Silences", silencesEl, h("button", { type: "button", class: "btn small", "data-testid": "new-silence", onclick: () => (amAvailable ? silenceForm({}) : undefined) }, "New silence")),
      card("Rules", rulesEl),
      card("Recent notifications", notesEl),
    ),
  );
  void load();
  const timer = window.setInterval(() => void load(), 15000);
  return { destroy: () => clearInterval(timer) };
}
