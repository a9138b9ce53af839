// Markets: the live ticker table of the chosen exchange, the chart of the chosen symbol
// and timeframe with the user's indicators, and the order book.
import { signal, type Signal } from "@preact/signals";
import { useEffect, useMemo, useState } from "preact/hooks";
import { feedConnected, marketFeed, type TickerFrame } from "../api/feeds";
import { api } from "../api/http";
import type { Exchange, OrderBook, Pair, Ticker } from "../api/types";
import { INDICATOR_KINDS, type IndicatorChoice } from "../components/Indicators";
import { LiveChart } from "../components/LiveChart";
import { Empty, Field, Part, Problem, Spinner, useLoad } from "../components/ui";
import { price, volume } from "../format";
import { route } from "../router";

interface Row {
  symbol: string;
  price: Signal<string>;
  bid: Signal<string>;
  ask: Signal<string>;
  change: Signal<string>;
  changeClass: Signal<string>;
  volume: Signal<string>;
  flash: Signal<string>;
}

function makeRow(symbol: string): Row {
  return {
    symbol,
    price: signal("—"),
    bid: signal("—"),
    ask: signal("—"),
    change: signal("—"),
    changeClass: signal(""),
    volume: signal("—"),
    flash: signal(""),
  };
}

let lastPrice = new Map<string, number>();

function paint(row: Row, t: Ticker | TickerFrame) {
  const before = lastPrice.get(row.symbol);
  row.price.value = price(t.price);
  row.bid.value = price(t.bid);
  row.ask.value = price(t.ask);
  row.volume.value = volume(t.volume);
  if (t.change !== null && t.change !== undefined) {
    row.change.value = `${t.change > 0 ? "+" : ""}${t.change.toFixed(2)}%`;
    row.changeClass.value = t.change > 0 ? "num up" : t.change < 0 ? "num down" : "num";
  }
  if (before !== undefined && before !== t.price) row.flash.value = t.price > before ? "up" : "down";
  lastPrice.set(row.symbol, t.price);
}

/** Rows that follow the price feed, repainted at most once a frame whatever the tick rate. */
function useTickerRows(exchange: string, symbols: string[]): Row[] {
  const rows = useMemo(() => symbols.map(makeRow), [exchange, symbols.join(",")]);
  useEffect(() => {
    if (!symbols.length) return;
    lastPrice = new Map();
    const bySymbol = new Map(rows.map((r) => [r.symbol, r]));
    const pending = new Map<string, TickerFrame>();
    let frame = 0;
    const flush = () => {
      frame = 0;
      for (const [symbol, t] of pending) paint(bySymbol.get(symbol)!, t);
      pending.clear();
    };
    api<{ tickers: Ticker[] }>("/market/tickers", { query: { exchange, symbols: symbols.join(",") } })
      .then((answer) => answer.tickers.forEach((t) => bySymbol.has(t.symbol) && paint(bySymbol.get(t.symbol)!, t)))
      .catch(() => undefined); // the feed fills the rows in a moment anyway
    const stops = symbols.map((symbol) =>
      marketFeed.subscribe(exchange, symbol, (f) => {
        if (f.type !== "ticker") return;
        pending.set(f.symbol, f);
        frame ||= requestAnimationFrame(flush);
      }),
    );
    return () => {
      stops.forEach((stop) => stop());
      cancelAnimationFrame(frame);
    };
  }, [rows]);
  return rows;
}

function TickerTable({ exchange, symbols, selected, onSelect }: { exchange: string; symbols: string[]; selected: string; onSelect: (s: string) => void }) {
  const rows = useTickerRows(exchange, symbols);
  return (
    <table class="tickers">
      <caption>
        Live prices on {exchange}{" "}
        <span class={feedConnected.value ? "live" : "offline"}>{feedConnected.value ? "live" : "connecting…"}</span>
      </caption>
      <thead>
        <tr>
          <th scope="col">Symbol</th>
          <th scope="col" class="num">Price</th>
          <th scope="col" class="num hide-mid">Bid</th>
          <th scope="col" class="num hide-mid">Ask</th>
          <th scope="col" class="num">24h</th>
          <th scope="col" class="num hide-narrow">Volume</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((row) => (
          <tr key={row.symbol} class={row.symbol === selected ? "selected" : ""} data-symbol={row.symbol}>
            <th scope="row">
              <button type="button" class="link" aria-pressed={row.symbol === selected} onClick={() => onSelect(row.symbol)}>
                {row.symbol}
              </button>
            </th>
            <td class="num price">
              <span class={row.flash}>{row.price}</span>
            </td>
            <td class="num hide-mid">{row.bid}</td>
            <td class="num hide-mid">{row.ask}</td>
            <td class={row.changeClass}>{row.change}</td>
            <td class="num hide-narrow">{row.volume}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function OrderBookView({ exchange, symbol }: { exchange: string; symbol: string }) {
  const book = useLoad(() => api<OrderBook>("/market/orderbook", { query: { exchange, symbol, depth: 12 } }), [exchange, symbol], 3000);
  if (book.error && !book.data) return <Problem error={book.error} what="The order book" />;
  if (!book.data) return <Spinner label="Loading the order book" />;
  const { bids, asks } = book.data;
  const max = Math.max(...bids.map((b) => b[1]), ...asks.map((a) => a[1]), 1e-12);
  const side = (levels: [number, number][], kind: "bid" | "ask") =>
    levels.map(([p, a]) => (
      <tr key={`${kind}${p}`} class={kind}>
        <td class="num">{price(p)}</td>
        <td class="num depth" style={{ "--depth": `${(a / max) * 100}%` }}>
          {a.toFixed(5)}
        </td>
      </tr>
    ));
  return (
    <table class="orderbook">
      <caption>Order book {symbol}</caption>
      <thead>
        <tr>
          <th scope="col" class="num">Price</th>
          <th scope="col" class="num">Amount</th>
        </tr>
      </thead>
      <tbody>
        {side([...asks].reverse(), "ask")}
        <tr class="spread">
          <td colSpan={2}>Spread {asks[0] && bids[0] ? price(asks[0][0] - bids[0][0]) : "—"}</td>
        </tr>
        {side(bids, "bid")}
      </tbody>
    </table>
  );
}

const chosenIndicators = signal<IndicatorChoice[]>(
  JSON.parse(localStorage.getItem("tradebot.indicators") ?? "null") ?? [{ id: "sma-20", kind: "sma", period: 20 }],
);

function IndicatorPicker() {
  const [kind, setKind] = useState<IndicatorChoice["kind"]>("ema");
  const [period, setPeriod] = useState(50);
  const save = (next: IndicatorChoice[]) => {
    chosenIndicators.value = next;
    localStorage.setItem("tradebot.indicators", JSON.stringify(next));
  };
  return (
    <div class="indicators" aria-label="Indicators">
      <ul class="chips">
        {chosenIndicators.value.map((c) => (
          <li key={c.id}>
            {INDICATOR_KINDS.find((k) => k.kind === c.kind)?.label} {c.period}
            <button type="button" class="icon" aria-label={`Remove ${c.kind} ${c.period}`} onClick={() => save(chosenIndicators.value.filter((x) => x.id !== c.id))}>
              ×
            </button>
          </li>
        ))}
      </ul>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          const id = `${kind}-${period}`;
          if (!chosenIndicators.value.some((c) => c.id === id)) save([...chosenIndicators.value, { id, kind, period }]);
        }}
      >
        <Field label="Indicator">
          <select
            value={kind}
            onChange={(e) => {
              const k = e.currentTarget.value as IndicatorChoice["kind"];
              setKind(k);
              setPeriod(INDICATOR_KINDS.find((x) => x.kind === k)!.period);
            }}
          >
            {INDICATOR_KINDS.map((k) => (
              <option key={k.kind} value={k.kind}>
                {k.label} {k.pane ? "(pane)" : "(on price)"}
              </option>
            ))}
          </select>
        </Field>
        <Field label="Period">
          <input type="number" min={2} max={500} value={period} onInput={(e) => setPeriod(Number(e.currentTarget.value))} />
        </Field>
        <button type="submit">Add</button>
      </form>
    </div>
  );
}

export function MarketsPage() {
  const exchanges = useLoad(() => api<{ exchanges: Exchange[] }>("/market/exchanges"), []);
  const query = route.value.query;
  const list = exchanges.data?.exchanges ?? [];
  const [exchange, setExchange] = useState<string>(query.get("exchange") ?? "");
  const current = list.find((e) => e.id === exchange) ?? list.find((e) => e.default) ?? list[0];
  // The pairs load at once (without an exchange: the default one), not after the exchanges,
  // and the last list seen is shown meanwhile, so the prices are asked for straight away.
  const pairsKey = `tradebot.pairs.${exchange || "default"}`;
  const pairs = useLoad(async () => {
    const answer = await api<{ pairs: Pair[] }>("/market/pairs", { query: { exchange: exchange || undefined } });
    localStorage.setItem(pairsKey, JSON.stringify(answer));
    return answer;
  }, [exchange]);
  const cachedPairs = useMemo(() => JSON.parse(localStorage.getItem(pairsKey) ?? "null") as { pairs: Pair[] } | null, [pairsKey]);
  const pairData = pairs.data ?? cachedPairs;
  const exchangeId = current?.id ?? pairData?.pairs[0]?.exchange ?? "";
  const symbols = useMemo(() => (pairData?.pairs ?? []).filter((p) => p.active).map((p) => p.symbol).slice(0, 50), [pairData]);
  const [symbol, setSymbol] = useState(query.get("symbol") ?? "");
  const [timeframe, setTimeframe] = useState(query.get("timeframe") ?? "1h");
  const chosen = symbols.includes(symbol) ? symbol : symbols.includes("BTC/USDT") ? "BTC/USDT" : symbols[0] ?? "";

  return (
    <main id="main" class="page markets" tabIndex={-1}>
      <h1>Markets</h1>
      <Part service="market" what="Market data">
        {exchanges.error && !exchanges.data ? <Problem error={exchanges.error} what="Exchanges" /> : null}
        <div class="toolbar">
          <Field label="Exchange">
            <select value={exchangeId} onChange={(e) => setExchange(e.currentTarget.value)}>
              {list.map((e) => (
                <option key={e.id} value={e.id}>
                  {e.id}
                  {e.status === "down" ? " (down)" : ""}
                </option>
              ))}
            </select>
          </Field>
          <Field label="Symbol">
            <select value={chosen} onChange={(e) => setSymbol(e.currentTarget.value)}>
              {symbols.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </Field>
          <Field label="Timeframe">
            <select value={timeframe} onChange={(e) => setTimeframe(e.currentTarget.value)}>
              {(current?.timeframes ?? ["1h"]).map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
          </Field>
        </div>
        <div class="grid-markets">
          <section class="card ticker-card" aria-label="Live prices">
            {pairs.error && !pairData ? <Problem error={pairs.error} what="Pairs" /> : null}
            {exchangeId && symbols.length ? (
              <TickerTable exchange={exchangeId} symbols={symbols} selected={chosen} onSelect={setSymbol} />
            ) : pairs.loading ? (
              <Spinner label="Loading pairs" />
            ) : (
              <Empty>No active pairs on this exchange.</Empty>
            )}
          </section>
          <section class="card chart-card" aria-label={`${chosen} chart`}>
            <h2>
              {chosen} <small>{timeframe}</small>
            </h2>
            <IndicatorPicker />
            {chosen ? <LiveChart exchange={exchangeId} symbol={chosen} timeframe={timeframe} indicators={chosenIndicators.value} /> : null}
          </section>
          <section class="card book-card" aria-label="Order book">
            {chosen ? <OrderBookView exchange={exchangeId} symbol={chosen} /> : null}
          </section>
        </div>
      </Part>
    </main>
  );
}
