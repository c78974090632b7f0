// LogQL text helpers used by the logs explorer: building a query from plain words and a
// namespace/app choice, finding the words to highlight, adding a label or field filter, wrapping
// a log query into the metric query that draws its histogram, and parsing fields out of a line.

export function quote(s: string): string {
  return JSON.stringify(s);
}

/** Splits plain words, keeping "quoted phrases" whole. */
export function splitWords(text: string): string[] {
  const out: string[] = [];
  const re = /"([^"]*)"|(\S+)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text))) {
    const w = m[1] ?? m[2];
    if (w) out.push(w);
  }
  return out;
}

/** `{ns, app} |= "w1" |= "w2"`; `-word` excludes (`!=`). */
export function wordsToLogql(words: string, matchers: [string, string][], fallbackLabel: string): string {
  const sel = matchers.filter(([, v]) => v).map(([k, v]) => `${k}=${quote(v)}`);
  if (sel.length === 0) sel.push(`${fallbackLabel}=~".+"`);
  let q = `{${sel.join(", ")}}`;
  for (const w of splitWords(words)) {
    if (w.startsWith("-") && w.length > 1) q += ` != ${quote(w.slice(1))}`;
    else q += ` |= ${quote(w)}`;
  }
  return q;
}

/** A regex matching what the query's positive line filters match (for highlighting). */
export function highlightRegex(query: string): RegExp | undefined {
  const parts: string[] = [];
  const re = /\|([=~])\s*("(?:[^"\\]|\\.)*"|`[^`]*`)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(query))) {
    let s: string;
    try {
      s = m[2].startsWith("`") ? m[2].slice(1, -1) : JSON.parse(m[2]);
    } catch {
      continue;
    }
    if (!s) continue;
    if (m[1] === "=") parts.push(s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
    else {
      try {
        new RegExp(s);
        parts.push(s.replace(/^\(\?i\)/, ""));
      } catch {
        // not a JS-compatible regex: no highlight for it
      }
    }
  }
  if (parts.length === 0) return undefined;
  try {
    return new RegExp(parts.map((p) => `(?:${p})`).join("|"), "gi");
  } catch {
    return undefined;
  }
}

export function isMetricQuery(query: string): boolean {
  return /^\s*\(?\s*[a-z_]+\s*(\(|by\b|without\b)/.test(query);
}

/** Adds `name op "value"` to the stream selector (a label) or as a label filter after a parser. */
export function addFilter(query: string, name: string, value: string, negate: boolean, parsed?: "json" | "logfmt"): string {
  const op = negate ? "!=" : "=";
  if (!parsed) {
    const close = query.indexOf("}");
    if (close > 0) {
      const inner = query.slice(1, close).trim();
      return `{${inner ? `${inner}, ` : ""}${name}${op}${quote(value)}${query.slice(close)}`;
    }
  }
  let q = query.trim();
  if (parsed && !new RegExp(`\\|\\s*${parsed}\\b`).test(q)) q += ` | ${parsed}`;
  return `${q} | ${name}${op}${quote(value)}`;
}

export function histogramQuery(query: string, stepS: number, by?: string): string {
  return `sum${by ? ` by (${by})` : ""}(count_over_time(${query} [${stepS}s]))`;
}

/** Fields a line carries: a JSON object's top-level keys, else logfmt pairs. */
export function parseFields(line: string): { kind: "json" | "logfmt"; fields: [string, string][] } | undefined {
  const t = line.trim();
  if (t.startsWith("{")) {
    try {
      const obj = JSON.parse(t);
      if (obj && typeof obj === "object" && !Array.isArray(obj)) {
        return {
          kind: "json",
          fields: Object.entries(obj).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]),
        };
      }
    } catch {
      // not JSON
    }
  }
  const fields: [string, string][] = [];
  const re = /(?:^|\s)([A-Za-z_][\w.-]*)=("(?:[^"\\]|\\.)*"|[^\s"]*)/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(line))) {
    let v = m[2];
    if (v.startsWith('"')) {
      try {
        v = JSON.parse(v);
      } catch {
        v = v.slice(1, -1);
      }
    }
    fields.push([m[1].replace(/[.-]/g, "_"), v]);
  }
  return fields.length ? { kind: "logfmt", fields } : undefined;
}

const LEVELS: [RegExp, string][] = [
  [/\b(fatal|panic|crit(ical)?|emerg(ency)?|alert)\b/i, "critical"],
  [/\b(err(or)?|fail(ed|ure)?|exception)\b/i, "error"],
  [/\b(warn(ing)?)\b/i, "warn"],
  [/\b(debug|trace)\b/i, "debug"],
  [/\b(info|notice)\b/i, "info"],
];

/** The line's level: a `level`-like label, a `level=` field, else a keyword in the line. */
export function detectLevel(labels: Record<string, string>, line: string): string {
  const fromLabel = labels.level ?? labels.detected_level ?? labels.severity ?? labels.lvl;
  const m = /\b(?:level|lvl|severity)["']?\s*[=:]\s*["']?(\w+)/i.exec(line);
  const text = fromLabel ?? (m ? m[1] : line.slice(0, 300));
  for (const [re, lvl] of LEVELS) if (re.test(text)) return lvl;
  return "unknown";
}
