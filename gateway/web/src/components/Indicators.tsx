// The indicators a user puts on a chart: overlays on the price (SMA, EMA, Bollinger) and
// panes below it (RSI, MACD, Stochastic), fetched from /analysis/indicators and aligned
// to the chart's candles by timestamp.
import { api } from "../api/http";
import type { Candle, LineSpec, PaneSpec } from "./Chart";

export interface IndicatorChoice {
  id: string;
  kind: "sma" | "ema" | "bbands" | "rsi" | "macd" | "stoch";
  period: number;
}

export const INDICATOR_KINDS: { kind: IndicatorChoice["kind"]; label: string; period: number; pane: boolean }[] = [
  { kind: "sma", label: "SMA", period: 20, pane: false },
  { kind: "ema", label: "EMA", period: 50, pane: false },
  { kind: "bbands", label: "Bollinger", period: 20, pane: false },
  { kind: "rsi", label: "RSI", period: 14, pane: true },
  { kind: "macd", label: "MACD", period: 12, pane: true },
  { kind: "stoch", label: "Stochastic", period: 14, pane: true },
];

const COLORS = ["#f59e0b", "#38bdf8", "#a78bfa", "#f472b6", "#34d399", "#fb7185"];

export function spec(choice: IndicatorChoice): string {
  switch (choice.kind) {
    case "bbands":
      return `bbands:${choice.period}:2`;
    case "macd":
      return `macd:${choice.period}:${Math.round(choice.period * 2.17)}:9`;
    case "stoch":
      return `stoch:${choice.period}:3:3`;
    default:
      return `${choice.kind}:${choice.period}`;
  }
}

type Series = (number | null)[];
interface IndicatorAnswer {
  timestamps: number[];
  indicators: Record<string, Series | Record<string, Series>>;
}

export async function loadIndicators(
  choices: IndicatorChoice[],
  candles: Candle[],
  market: { exchange: string; symbol: string; timeframe: string },
): Promise<{ overlays: LineSpec[]; panes: PaneSpec[] }> {
  if (!choices.length || !candles.length) return { overlays: [], panes: [] };
  const answer = await api<IndicatorAnswer>("/analysis/indicators", {
    query: {
      exchange: market.exchange,
      symbol: market.symbol,
      timeframe: market.timeframe,
      limit: candles.length,
      indicators: choices.map(spec).join(","),
    },
  });
  const index = new Map(answer.timestamps.map((t, i) => [t, i]));
  const align = (values: Series): Series => candles.map(([t]) => values[index.get(t) ?? -1] ?? null);
  const overlays: LineSpec[] = [];
  const panes: PaneSpec[] = [];
  choices.forEach((choice, n) => {
    const key = spec(choice);
    const raw = answer.indicators[key];
    if (!raw) return;
    const color = COLORS[n % COLORS.length];
    const label = INDICATOR_KINDS.find((k) => k.kind === choice.kind)!.label;
    if (Array.isArray(raw)) {
      const line = { name: `${label} ${choice.period}`, color, values: align(raw) };
      if (choice.kind === "rsi") panes.push({ title: line.name, lines: [line] });
      else overlays.push(line);
      return;
    }
    const parts = Object.entries(raw);
    if (choice.kind === "bbands") {
      for (const [name, values] of parts) overlays.push({ name: `BB ${name}`, color, values: align(values) });
    } else {
      panes.push({
        title: `${label} ${choice.period}`,
        lines: parts.map(([name, values], i) => ({
          name,
          color: name === "histogram" ? "#64748b" : COLORS[(n + i) % COLORS.length],
          values: align(values),
          kind: name === "histogram" ? ("histogram" as const) : ("line" as const),
        })),
      });
    }
  });
  return { overlays, panes };
}
