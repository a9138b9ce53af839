// Charts on TradingView's lightweight-charts: candles with volume, indicator overlays on
// the price, indicator panes below it, trade markers, and a live last candle; and plain
// line charts (equity, drawdown). Colours follow the theme's CSS variables.
import {
  CandlestickSeries,
  ColorType,
  createChart,
  createSeriesMarkers,
  HistogramSeries,
  LineSeries,
  type IChartApi,
  type ISeriesApi,
  type ISeriesMarkersPluginApi,
  type SeriesMarker,
  type Time,
  type UTCTimestamp,
} from "lightweight-charts";
import { effect } from "@preact/signals";
import { useEffect, useRef } from "preact/hooks";
import { theme } from "../theme";

export type Candle = [number, number, number, number, number, number];

export interface LineSpec {
  name: string;
  color: string;
  values: (number | null)[];
  kind?: "line" | "histogram";
}

export interface PaneSpec {
  title: string;
  lines: LineSpec[];
}

export interface Marker {
  time: number; // epoch ms
  side: "buy" | "sell";
  text: string;
}

export interface LiveHandle {
  update?: (candle: Candle) => void;
}

function css(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function palette() {
  return {
    background: css("--surface"),
    text: css("--text-muted"),
    grid: css("--grid"),
    up: css("--up"),
    down: css("--down"),
    border: css("--border"),
  };
}

const sec = (ms: number) => Math.floor(ms / 1000) as UTCTimestamp;

function baseOptions() {
  const p = palette();
  return {
    autoSize: true,
    layout: {
      background: { type: ColorType.Solid, color: p.background },
      textColor: p.text,
      attributionLogo: false,
      panes: { separatorColor: p.border, separatorHoverColor: p.grid, enableResize: true },
    },
    grid: { vertLines: { color: p.grid }, horzLines: { color: p.grid } },
    rightPriceScale: { borderColor: p.border },
    timeScale: { borderColor: p.border, timeVisible: true, secondsVisible: false },
    crosshair: { mode: 0 },
  };
}

function useThemed(chart: { current: IChartApi | null }, restyle?: () => void) {
  useEffect(
    () =>
      effect(() => {
        void theme.value; // re-read the CSS variables when the theme changes
        requestAnimationFrame(() => {
          chart.current?.applyOptions(baseOptions());
          restyle?.();
        });
      }),
    [],
  );
}

interface PriceChartProps {
  candles: Candle[];
  overlays?: LineSpec[];
  panes?: PaneSpec[];
  markers?: Marker[];
  live?: LiveHandle;
  label: string;
  height?: number;
}

export function PriceChart({ candles, overlays = [], panes = [], markers = [], live, label, height = 420 }: PriceChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  const price = useRef<ISeriesApi<"Candlestick"> | null>(null);
  const vol = useRef<ISeriesApi<"Histogram"> | null>(null);
  const marks = useRef<ISeriesMarkersPluginApi<Time> | null>(null);
  const extra = useRef<ISeriesApi<"Line" | "Histogram">[]>([]);

  const restyle = () => {
    const p = palette();
    price.current?.applyOptions({ upColor: p.up, downColor: p.down, wickUpColor: p.up, wickDownColor: p.down, borderVisible: false });
  };

  useEffect(() => {
    const c = createChart(box.current!, baseOptions());
    chart.current = c;
    price.current = c.addSeries(CandlestickSeries, {});
    vol.current = c.addSeries(HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "volume", lastValueVisible: false, priceLineVisible: false });
    vol.current.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
    marks.current = createSeriesMarkers(price.current, []);
    restyle();
    return () => {
      c.remove();
      chart.current = null;
    };
  }, []);
  useThemed(chart, restyle);

  useEffect(() => {
    const p = palette();
    price.current?.setData(candles.map(([t, o, h, l, cl]) => ({ time: sec(t), open: o, high: h, low: l, close: cl })));
    vol.current?.setData(
      candles.map(([t, o, , , cl, v]) => ({ time: sec(t), value: v, color: (cl >= o ? p.up : p.down) + "66" })),
    );
  }, [candles]);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    for (const s of extra.current) c.removeSeries(s);
    extra.current = [];
    const times = candles.map((row) => sec(row[0]));
    const add = (spec: LineSpec, pane: number) => {
      const data = spec.values.flatMap((v, i) => (v === null || v === undefined || i >= times.length ? [] : [{ time: times[i], value: v }]));
      const series =
        spec.kind === "histogram"
          ? c.addSeries(HistogramSeries, { color: spec.color, title: spec.name, priceLineVisible: false, lastValueVisible: false }, pane)
          : c.addSeries(LineSeries, { color: spec.color, title: spec.name, lineWidth: 1, priceLineVisible: false, lastValueVisible: false, crosshairMarkerVisible: false }, pane);
      series.setData(data);
      extra.current.push(series);
    };
    for (const o of overlays) add(o, 0);
    panes.forEach((pane, i) => pane.lines.forEach((line) => add(line, i + 1)));
    const all = c.panes();
    all.forEach((pane, i) => pane.setStretchFactor(i === 0 ? 3 : 1));
  }, [candles, overlays, panes]);

  useEffect(() => {
    const p = palette();
    const data: SeriesMarker<Time>[] = markers
      .map((m) => ({
        time: sec(m.time),
        position: m.side === "buy" ? ("belowBar" as const) : ("aboveBar" as const),
        shape: m.side === "buy" ? ("arrowUp" as const) : ("arrowDown" as const),
        color: m.side === "buy" ? p.up : p.down,
        text: m.text,
      }))
      .sort((a, b) => (a.time as number) - (b.time as number));
    marks.current?.setMarkers(data);
  }, [markers]);

  if (live) {
    live.update = (row: Candle) => {
      const [t, o, h, l, cl, v] = row;
      const p = palette();
      try {
        price.current?.update({ time: sec(t), open: o, high: h, low: l, close: cl });
        vol.current?.update({ time: sec(t), value: v, color: (cl >= o ? p.up : p.down) + "66" });
      } catch {
        // An update older than the last bar (a late frame) is refused by the chart: skip it.
      }
    };
  }

  // Markers older than the first candle cannot be drawn; the label says how many are.
  const shown = candles.length ? markers.filter((m) => m.time >= candles[0][0]).length : 0;
  const described = markers.length ? `${label}, ${shown} trade${shown === 1 ? "" : "s"} marked` : label;
  return <div class="chart" ref={box} style={{ height: `${height + panes.length * 120}px` }} role="img" aria-label={described} />;
}

interface LineChartProps {
  series: { name: string; color: string; points: [number, number][]; area?: boolean }[];
  label: string;
  height?: number;
}

export function LineChart({ series, label, height = 220 }: LineChartProps) {
  const box = useRef<HTMLDivElement>(null);
  const chart = useRef<IChartApi | null>(null);
  useEffect(() => {
    const c = createChart(box.current!, baseOptions());
    chart.current = c;
    return () => {
      c.remove();
      chart.current = null;
    };
  }, []);
  useThemed(chart);
  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const made = series.map((s) => {
      const line = c.addSeries(LineSeries, { color: s.color, title: s.name, lineWidth: 2, priceLineVisible: false });
      const seen = new Set<number>();
      line.setData(
        s.points.flatMap(([t, v]) => {
          const time = sec(t);
          if (seen.has(time)) return [];
          seen.add(time);
          return [{ time, value: v }];
        }),
      );
      return line;
    });
    c.timeScale().fitContent();
    return () => made.forEach((m) => chart.current?.removeSeries(m));
  }, [series]);
  return <div class="chart" ref={box} style={{ height: `${height}px` }} role="img" aria-label={label} />;
}
