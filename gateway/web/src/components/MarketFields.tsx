// Exchange, symbol and timeframe chosen in a form (backtests, bots, paper orders): the
// configured exchanges, the chosen exchange's pairs and its timeframes.
import { useState } from "preact/hooks";
import { api } from "../api/http";
import type { Exchange, Pair } from "../api/types";
import { Field, useLoad } from "./ui";

export interface MarketChoice {
  exchange: string; // resolved: the default exchange until one is chosen
  symbol: string;
  timeframe: string;
  exchanges: Exchange[];
  symbols: string[];
  timeframes: string[];
  set: (part: Partial<Record<"exchange" | "symbol" | "timeframe", string>>) => void;
}

export function useMarketChoice(symbol = "BTC/USDT", timeframe = "1h"): MarketChoice {
  const [chosen, setChosen] = useState({ exchange: "", symbol, timeframe });
  const exchanges = useLoad(() => api<{ exchanges: Exchange[] }>("/market/exchanges"), []);
  const list = exchanges.data?.exchanges ?? [];
  const exchange = chosen.exchange || list.find((e) => e.default)?.id || "";
  const pairs = useLoad(
    () => (exchange ? api<{ pairs: Pair[] }>("/market/pairs", { query: { exchange } }) : Promise.resolve({ pairs: [] })),
    [exchange],
  );
  return {
    ...chosen,
    exchange,
    exchanges: list,
    symbols: pairs.data?.pairs.filter((p) => p.active).map((p) => p.symbol) ?? [chosen.symbol],
    timeframes: list.find((e) => e.id === exchange)?.timeframes ?? [chosen.timeframe],
    set: (part) => setChosen({ ...chosen, exchange, ...part }),
  };
}

interface Props {
  market: MarketChoice;
  error?: (field: string) => string | undefined;
  withTimeframe?: boolean;
}

export function MarketFields({ market, error = () => undefined, withTimeframe = true }: Props) {
  return (
    <>
      <Field label="Exchange" error={error("exchange")}>
        <select name="exchange" value={market.exchange} onChange={(e) => market.set({ exchange: e.currentTarget.value })}>
          {market.exchanges.map((x) => (
            <option key={x.id} value={x.id}>
              {x.id}
              {x.status === "down" ? " (down)" : ""}
            </option>
          ))}
        </select>
      </Field>
      <Field label="Symbol" error={error("symbol")}>
        <select name="symbol" value={market.symbol} onChange={(e) => market.set({ symbol: e.currentTarget.value })}>
          {market.symbols.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </Field>
      {withTimeframe ? (
        <Field label="Timeframe" error={error("timeframe")}>
          <select name="timeframe" value={market.timeframe} onChange={(e) => market.set({ timeframe: e.currentTarget.value })}>
            {market.timeframes.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </Field>
      ) : null}
    </>
  );
}
