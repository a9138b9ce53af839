// A market's candles from GET /market/ohlcv, kept live by the price feed: each tick moves
// the last candle, a tick past its end starts the next one, and a closed-candle frame
// sets the exact figures. Indicators are computed by the analysis service over the
// loaded candles.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { marketFeed } from "../api/feeds";
import { api } from "../api/http";
import type { Candle, LineSpec, Marker, PaneSpec } from "./Chart";
import { useCharts } from "./charts";
import { loadIndicators, type IndicatorChoice } from "./Indicators";
import { Problem, Spinner } from "./ui";

const UNIT_MS: Record<string, number> = { m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000, M: 2_592_000_000 };

export function timeframeMs(timeframe: string): number {
  const match = /^(\d+)([mhdwM])$/.exec(timeframe);
  return match ? Number(match[1]) * UNIT_MS[match[2]] : 60_000;
}

interface Props {
  exchange: string;
  symbol: string;
  timeframe: string;
  indicators?: IndicatorChoice[];
  markers?: Marker[];
  limit?: number;
  since?: number; // epoch ms: a fixed range (no live updates)
  live?: boolean;
  height?: number;
}

export function LiveChart({ exchange, symbol, timeframe, indicators = [], markers, limit = 300, since, live = true, height }: Props) {
  const [candles, setCandles] = useState<Candle[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [studies, setStudies] = useState<{ overlays: LineSpec[]; panes: PaneSpec[] }>({ overlays: [], panes: [] });
  const [studyError, setStudyError] = useState<unknown>(null);
  const handle = useRef<{ update?: (c: Candle) => void }>({}).current;
  const last = useRef<Candle | null>(null);

  useEffect(() => {
    let stale = false;
    setCandles(null);
    setError(null);
    api<{ candles: Candle[] }>("/market/ohlcv", { query: { exchange, symbol, timeframe, limit, since } })
      .then((answer) => {
        if (stale) return;
        setCandles(answer.candles);
        last.current = answer.candles.length ? [...answer.candles[answer.candles.length - 1]] as Candle : null;
      })
      .catch((err) => !stale && setError(err));
    return () => {
      stale = true;
    };
  }, [exchange, symbol, timeframe, limit, since]);

  useEffect(() => {
    if (!live || !candles) return;
    const step = timeframeMs(timeframe);
    return marketFeed.subscribe(exchange, symbol, (frame) => {
      const bar = last.current;
      if (frame.type === "candle") {
        if (frame.timeframe !== timeframe || !bar) return;
        if (frame.candle[0] === bar[0]) {
          last.current = [...frame.candle] as Candle;
          handle.update?.(last.current);
        }
        return;
      }
      const ts = typeof frame.timestamp === "number" ? frame.timestamp : Date.parse(frame.timestamp);
      const p = frame.price;
      if (!bar || !Number.isFinite(ts) || !Number.isFinite(p)) return;
      if (ts >= bar[0] + step) {
        const open = Math.floor(ts / step) * step;
        last.current = [open, p, p, p, p, 0];
      } else if (ts >= bar[0]) {
        bar[2] = Math.max(bar[2], p);
        bar[3] = Math.min(bar[3], p);
        bar[4] = p;
      } else {
        return;
      }
      handle.update?.(last.current!);
    });
  }, [exchange, symbol, timeframe, candles, live]);

  const choiceKey = indicators.map((i) => `${i.kind}:${i.period}`).join(",");
  useEffect(() => {
    if (!candles) return;
    let stale = false;
    setStudyError(null);
    loadIndicators(indicators, candles, { exchange, symbol, timeframe })
      .then((s) => !stale && setStudies(s))
      .catch((err) => {
        if (stale) return;
        setStudies({ overlays: [], panes: [] });
        setStudyError(err);
      });
    return () => {
      stale = true;
    };
  }, [candles, choiceKey]);

  const charts = useCharts();
  const label = useMemo(() => `${symbol} ${timeframe} candlestick chart on ${exchange}`, [symbol, timeframe, exchange]);
  if (error) return <Problem error={error} what={`The ${symbol} chart`} />;
  if (!candles || !charts) return <Spinner label="Loading the chart" />;
  return (
    <>
      <charts.PriceChart candles={candles} overlays={studies.overlays} panes={studies.panes} markers={markers} live={handle} label={label} height={height} />
      {studyError ? <Problem error={studyError} what="Indicators" /> : null}
    </>
  );
}
