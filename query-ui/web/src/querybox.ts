// The query editor shared by the logs, metrics and dashboard pages: a growing textarea with an
// autocomplete dropdown (the page supplies completions for the text before the caret), Ctrl+Enter
// to run, and the server's error shown right under the query with a caret at its position.

import { h, clear, debounce } from "./dom";
import { ApiError } from "./api";

export interface Completion {
  /** Offset in the text where the replaced word starts. */
  from: number;
  items: { label: string; detail?: string; insert?: string }[];
}

export type Completer = (text: string, caret: number) => Promise<Completion | undefined>;

export interface QueryBox {
  el: HTMLElement;
  input: HTMLTextAreaElement;
  value(): string;
  set(v: string): void;
  showError(e: unknown): void;
  clearError(): void;
}

export function queryBox(opts: {
  value: string;
  placeholder: string;
  label: string;
  complete?: Completer;
  onRun: () => void;
  onInput?: (v: string) => void;
}): QueryBox {
  const input = h("textarea", {
    class: "query-input",
    rows: 1,
    spellcheck: "false",
    autocomplete: "off",
    placeholder: opts.placeholder,
    "aria-label": opts.label,
  });
  input.value = opts.value;
  const menu = h("ul", { class: "ac-menu", role: "listbox", hidden: true });
  const error = h("div", { class: "query-error", role: "alert", hidden: true });
  const el = h("div", { class: "query-box" }, h("div", { class: "query-field" }, input, menu), error);
  let items: Completion["items"] = [];
  let from = 0;
  let active = 0;

  const grow = () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  };
  const close = () => {
    menu.hidden = true;
    items = [];
  };
  const render = () => {
    clear(
      menu,
      items.map((it, i) =>
        h(
          "li",
          {
            class: i === active ? "active" : "",
            role: "option",
            onmousedown: (e: Event) => {
              e.preventDefault();
              active = i;
              accept();
            },
          },
          h("span", { class: "ac-label" }, it.label),
          it.detail ? h("span", { class: "ac-detail" }, it.detail) : null,
        ),
      ),
    );
    menu.hidden = items.length === 0;
    (menu.children[active] as HTMLElement | undefined)?.scrollIntoView({ block: "nearest" });
  };
  const accept = () => {
    const it = items[active];
    if (!it) return;
    const caret = input.selectionStart ?? input.value.length;
    const ins = it.insert ?? it.label;
    input.value = input.value.slice(0, from) + ins + input.value.slice(caret);
    const pos = from + ins.length;
    input.setSelectionRange(pos, pos);
    close();
    grow();
    opts.onInput?.(input.value);
    suggest();
  };
  let seq = 0;
  const suggest = debounce(async () => {
    if (!opts.complete || document.activeElement !== input) return;
    const my = ++seq;
    const caret = input.selectionStart ?? input.value.length;
    let c: Completion | undefined;
    try {
      c = await opts.complete(input.value, caret);
    } catch {
      c = undefined;
    }
    if (my !== seq) return;
    if (!c || c.items.length === 0) return close();
    const word = input.value.slice(c.from, caret).toLowerCase();
    items = c.items.filter((it) => it.label.toLowerCase().includes(word) && it.label !== word).slice(0, 50);
    items.sort((a, b) => Number(!a.label.toLowerCase().startsWith(word)) - Number(!b.label.toLowerCase().startsWith(word)));
    from = c.from;
    active = 0;
    render();
  }, 120);

  input.addEventListener("input", () => {
    grow();
    opts.onInput?.(input.value);
    suggest();
  });
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      close();
      opts.onRun();
      return;
    }
    if (!menu.hidden && items.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        render();
        return;
      }
      if (e.key === "Tab" || (e.key === "Enter" && !e.shiftKey)) {
        e.preventDefault();
        accept();
        return;
      }
      if (e.key === "Escape") {
        close();
        return;
      }
    }
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      opts.onRun();
    }
  });
  input.addEventListener("keyup", (e) => {
    if (e.key === "ArrowLeft" || e.key === "ArrowRight" || e.key === "Home" || e.key === "End") suggest();
  });
  input.addEventListener("focus", () => suggest());
  requestAnimationFrame(grow);

  return {
    el,
    input,
    value: () => input.value.trim(),
    set: (v) => {
      input.value = v;
      grow();
    },
    showError: (e: unknown) => {
      const msg = e instanceof Error ? e.message : String(e);
      const off = e instanceof ApiError ? e.offset : undefined;
      const parts: (HTMLElement | string)[] = [h("div", { class: "error-msg" }, msg)];
      if (off !== undefined && off >= 0) {
        const q = input.value;
        const lineStart = q.lastIndexOf("\n", off - 1) + 1;
        const lineEnd = q.indexOf("\n", off);
        const line = q.slice(lineStart, lineEnd < 0 ? undefined : lineEnd);
        const col = off - lineStart;
        parts.push(
          h(
            "pre",
            { class: "error-pos" },
            line.slice(0, col),
            h("mark", { class: "error-at" }, line.slice(col, col + 1) || " "),
            line.slice(col + 1),
            "\n",
            " ".repeat(col) + "^",
          ),
        );
        input.setSelectionRange(off, off);
      }
      clear(error, ...parts);
      error.hidden = false;
      el.classList.add("has-error");
    },
    clearError: () => {
      error.hidden = true;
      el.classList.remove("has-error");
    },
  };
}

/** The word (identifier-ish) ending at `caret`. */
export function wordBefore(text: string, caret: number): { word: string; from: number } {
  let i = caret;
  while (i > 0 && /[\w:.]/.test(text[i - 1])) i--;
  return { word: text.slice(i, caret), from: i };
}
