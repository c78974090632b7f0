// Live tail over Loki's websocket (`/loki/api/v1/tail`): the server pushes each new line once, so
// nothing polls. Pausing keeps the socket open and buffers what arrives (the newest MAX_BUFFERED
// lines; older ones are counted as dropped) until resume; a lost connection reconnects with
// exponential backoff and jitter, resuming after the newest line shown. Browsers hide why a
// websocket handshake failed, so after a refused upgrade the same URL is asked again as a plain
// GET, which answers with the status and message the upgrade got (429: all of
// `server.max_tail_connections` are taken).

import { qs, msToNs, tenant, token, type Stream } from "./api";

export const MAX_BUFFERED = 10_000;
const MAX_BACKOFF_MS = 30_000;
/** Lines the server sends in the first frame (the newest since `start`). */
const FIRST_LIMIT = 1000;

export type LiveState =
  | { kind: "connecting" }
  | { kind: "live" }
  | { kind: "paused"; buffered: number; dropped: number }
  | { kind: "retrying"; why: string; inMs: number; refused: boolean }
  | { kind: "failed"; why: string };

export class LiveTail {
  private ws?: WebSocket;
  private buffer: Stream[] = [];
  private buffered = 0;
  private dropped = 0;
  private paused = false;
  private stopped = false;
  private attempt = 0;
  private timer?: number;

  /** `since` gives the newest timestamp shown (ns): a (re)connection starts there. */
  constructor(
    private query: string,
    private since: () => bigint | undefined,
    private onLines: (streams: Stream[]) => void,
    private onState: (s: LiveState) => void,
  ) {
    this.connect();
  }

  private url(): string {
    const newest = this.since();
    const start = newest !== undefined ? newest.toString() : msToNs(Date.now() - 60_000);
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    // A browser cannot give a websocket headers: the token goes as `access_token` (server.auth).
    const params = qs({ query: this.query, start, limit: FIRST_LIMIT, tenant: tenant() || undefined, access_token: token() || undefined });
    return `${proto}//${location.host}/loki/api/v1/tail?${params}`;
  }

  private connect(): void {
    if (this.stopped) return;
    const url = this.url();
    const ws = new WebSocket(url);
    this.ws = ws;
    let opened = false;
    if (!this.paused) this.onState({ kind: "connecting" });
    ws.onopen = () => {
      opened = true;
      this.attempt = 0;
      this.emit();
    };
    ws.onmessage = (e) => {
      let frame: { streams?: Stream[] };
      try {
        frame = JSON.parse(String(e.data));
      } catch {
        return;
      }
      if (frame.streams?.length) this.receive(frame.streams);
    };
    ws.onclose = (e) => {
      if (this.ws !== ws || this.stopped) return;
      this.ws = undefined;
      if (opened) this.retry(e.reason || "the connection closed", false);
      else void this.refused(url);
    };
  }

  /** Asks the refused URL again without the upgrade to learn why. */
  private async refused(url: string): Promise<void> {
    let status = 0;
    let why = "cannot reach the server";
    try {
      const resp = await fetch(url.replace(/^ws/, "http"));
      status = resp.status;
      why = (await resp.text()).trim() || `HTTP ${status}`;
    } catch {
      // unreachable: retry
    }
    if (this.stopped) return;
    // 400 about the missing upgrade means the tail itself is fine: the socket failed in between.
    if (status >= 400 && status < 500 && status !== 429 && !/upgrade/i.test(why)) {
      this.onState({ kind: "failed", why });
      return;
    }
    this.retry(why, status === 429);
  }

  private retry(why: string, refused: boolean): void {
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.attempt);
    const inMs = Math.round(base * (0.75 + Math.random() * 0.5));
    this.attempt++;
    this.onState({ kind: "retrying", why, inMs, refused });
    this.timer = window.setTimeout(() => this.connect(), inMs);
  }

  private receive(streams: Stream[]): void {
    if (!this.paused) {
      this.onLines(streams);
      return;
    }
    this.buffer.push(...streams);
    this.buffered += streams.reduce((n, s) => n + s.values.length, 0);
    while (this.buffered > MAX_BUFFERED && this.buffer.length > 1) {
      const oldest = this.buffer.shift()!;
      this.buffered -= oldest.values.length;
      this.dropped += oldest.values.length;
    }
    this.emit();
  }

  private emit(): void {
    if (this.paused) this.onState({ kind: "paused", buffered: this.buffered, dropped: this.dropped });
    else if (this.ws?.readyState === WebSocket.OPEN) this.onState({ kind: "live" });
  }

  isPaused(): boolean {
    return this.paused;
  }

  pause(): void {
    this.paused = true;
    this.emit();
  }

  resume(): void {
    this.paused = false;
    const lines = this.buffer;
    this.buffer = [];
    this.buffered = 0;
    this.dropped = 0;
    if (lines.length) this.onLines(lines);
    this.emit();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = undefined;
    ws?.close();
  }
}
