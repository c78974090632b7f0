// uPlot charts: time series (line or stacked) with a live legend showing hover values, and bar
// histograms for log volume. Dragging across any chart selects a time range (`onSelect`), which the
// pages turn into the URL's absolute range. Colours come from the theme's CSS variables.

import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fmtNumber, fmtTime } from "./dom";

export const PALETTE = [
  "#4f8cff", "#f2a03d", "#3fbf7f", "#e5534b", "#a371f7", "#39c5cf", "#d4a72c", "#ec6cb9",
  "#7d8cff", "#8fd14f", "#ff8a65", "#26a69a",
];

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
}

export interface SeriesSpec {
  label: string;
  color?: string;
}

export interface ChartOpts {
  series: SeriesSpec[];
  /** x in seconds, then one array per series (null = gap). */
  data: (number | null)[][];
  kind: "line" | "stacked" | "bars";
  height: number;
  onSelect?: (startMs: number, endMs: number) => void;
  legend?: boolean;
  unit?: (v: number) => string;
}

function stack(data: (number | null)[][]): (number | null)[][] {
  const out: (number | null)[][] = [data[0]];
  const acc = new Array<number>(data[0].length).fill(0);
  for (let s = 1; s < data.length; s++) {
    out.push(
      data[s].map((v, i) => {
        if (v === null) return null;
        acc[i] += v;
        return acc[i];
      }),
    );
  }
  return out;
}

function stackReverse(data: (number | null)[][]): (number | null)[][] {
  const out: (number | null)[][] = data.map((s) => s.slice());
  for (let s = data.length - 2; s >= 1; s--) {
    out[s] = data[s].map((v, i) => (v === null && out[s + 1][i] === null ? null : (v ?? 0) + (out[s + 1][i] ?? 0)));
  }
  return out;
}

export class Chart {
  plot: uPlot;
  private ro: ResizeObserver;

  constructor(
    public el: HTMLElement,
    opts: ChartOpts,
  ) {
    const raw = opts.data;
    // Stacked bars: series i stands on i+1..n, drawn first so the later (shorter) ones paint over it.
    const barsStacked = opts.kind === "bars" && opts.series.length > 1;
    const data = opts.kind === "stacked" ? stack(raw) : barsStacked ? stackReverse(raw) : raw;
    const axisColor = cssVar("--muted");
    const grid = cssVar("--grid");
    const fmt = opts.unit ?? fmtNumber;
    const bars = opts.kind === "bars" ? uPlot.paths.bars!({ size: [0.8, 40] }) : undefined;
    const series: uPlot.Series[] = [
      { value: (_u, v) => (v == null ? "" : fmtTime(v * 1000)) },
      ...opts.series.map((s, i) => {
        const color = s.color ?? PALETTE[i % PALETTE.length];
        return {
          label: s.label,
          stroke: color,
          width: opts.kind === "bars" ? 0 : 1.5,
          fill: opts.kind === "line" ? undefined : color + (opts.kind === "bars" ? "cc" : "55"),
          paths: bars,
          points: { show: false },
          spanGaps: false,
          value: (_u: uPlot, _v: number | null, _si: number, idx: number | null) => {
            const v = idx == null ? null : raw[i + 1][idx];
            return v == null ? "—" : fmt(v);
          },
        } as uPlot.Series;
      }),
    ];
    const bands: uPlot.Band[] = [];
    if (opts.kind === "stacked") {
      for (let i = opts.series.length; i > 1; i--) bands.push({ series: [i, i - 1] });
    }
    const o: uPlot.Options = {
      width: Math.max(200, el.clientWidth || 600),
      height: opts.height,
      series,
      bands,
      legend: { show: opts.legend ?? true, live: true },
      cursor: { drag: { x: true, y: false, setScale: false }, points: { size: 6 } },
      select: { show: true, left: 0, top: 0, width: 0, height: 0 },
      scales: { x: { time: true }, y: { range: (_u, min, max) => [Math.min(0, min), max > 0 ? max * 1.05 : 1] } },
      axes: [
        { stroke: axisColor, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, space: 80 },
        {
          stroke: axisColor,
          grid: { stroke: grid, width: 1 },
          ticks: { stroke: grid },
          size: 60,
          values: (_u, vals) => vals.map((v) => (v == null ? "" : fmt(v))),
        },
      ],
      hooks: {
        setSelect: [
          (u) => {
            if (u.select.width < 3 || !opts.onSelect) return;
            const a = u.posToVal(u.select.left, "x");
            const b = u.posToVal(u.select.left + u.select.width, "x");
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            opts.onSelect(Math.round(a * 1000), Math.round(b * 1000));
          },
        ],
      },
    };
    this.plot = new uPlot(o, data as uPlot.AlignedData, el);
    el.dataset.seriesCount = String(opts.series.length);
    this.ro = new ResizeObserver(() => {
      const w = el.clientWidth;
      if (w > 0 && Math.abs(w - this.plot.width) > 2) this.plot.setSize({ width: w, height: opts.height });
    });
    this.ro.observe(el);
  }

  destroy(): void {
    this.ro.disconnect();
    this.plot.destroy();
  }
}

/** Aligns matrix results on one x axis: `start..end` by `step` (seconds). */
export function align(
  series: { values: [number, string][] }[],
  startS: number,
  endS: number,
  stepS: number,
): (number | null)[][] {
  const first = Math.ceil(startS / stepS) * stepS;
  const xs: number[] = [];
  for (let t = first; t <= endS + 1e-9; t += stepS) xs.push(t);
  const idx = new Map<number, number>();
  xs.forEach((t, i) => idx.set(Math.round(t * 1000), i));
  const out: (number | null)[][] = [xs];
  for (const s of series) {
    const ys = new Array<number | null>(xs.length).fill(null);
    for (const [t, v] of s.values) {
      let i = idx.get(Math.round(t * 1000));
      if (i === undefined) {
        // Off-grid timestamps (a server with another alignment): nearest slot.
        i = Math.min(xs.length - 1, Math.max(0, Math.round((t - first) / stepS)));
      }
      ys[i] = Number(v);
    }
    out.push(ys);
  }
  return out;
}
