// One bot: its trades marked on the live chart, its position, balance and risk settings,
// and its events as they happen (fills, risk exits and blocks, failures pushed over
// /notifications/ws; the orders its signals placed, with their reasons).
import { useEffect, useMemo, useState } from "preact/hooks";
import { onNotification, type Notification } from "../api/feeds";
import { ApiError, api } from "../api/http";
import { type Bot, type Exchange, exchangeTime, type Order, type Page, type Trade } from "../api/types";
import type { Marker } from "../components/Chart";
import { LiveChart } from "../components/LiveChart";
import { Empty, Field, Part, Problem, Spinner, StatusBadge, useAction, useLoad } from "../components/ui";
import { money, price, signed, tone, when } from "../format";
import { go, href } from "../router";
import { toast } from "../toasts";
import { BotActions } from "./Bots";

const RISK_KEYS = ["stop_loss", "take_profit", "trailing_stop", "max_position_value", "max_open_positions", "daily_loss_limit"];

function RiskSettings({ bot, onSaved }: { bot: Bot; onSaved: (b: Bot) => void }) {
  const [values, setValues] = useState<Record<string, string>>(
    Object.fromEntries(RISK_KEYS.map((k) => [k, bot.risk?.[k] === null || bot.risk?.[k] === undefined ? "" : String(bot.risk[k])])),
  );
  const save = useAction();
  return (
    <form
      class="card"
      aria-labelledby="risk-title"
      onSubmit={async (e) => {
        e.preventDefault();
        const risk = Object.fromEntries(
          Object.entries(values)
            .filter(([, v]) => v !== "")
            .map(([k, v]) => [k, k === "max_open_positions" || k === "stop_loss" || k === "take_profit" || k === "trailing_stop" ? Number(v) : v]),
        );
        const next = await save.run(() => api<Bot>(`/trading/bots/${bot.id}`, { method: "PATCH", body: { risk } }));
        if (next) {
          onSaved(next);
          toast("Risk settings saved", bot.status === "running" ? "The bot applies them at its next sync." : "", "good");
        }
      }}
    >
      <h2 id="risk-title">Risk settings</h2>
      <div class="row">
        {RISK_KEYS.map((key) => (
          <Field key={key} label={key.replace(/_/g, " ")} error={save.error instanceof ApiError ? save.error.field(key) : undefined}>
            <input name={key} inputMode="decimal" value={values[key]} onInput={(e) => setValues({ ...values, [key]: e.currentTarget.value })} />
          </Field>
        ))}
      </div>
      {save.error ? <Problem error={save.error} what="The risk settings were refused" /> : null}
      <button type="submit" disabled={save.busy}>
        Save risk settings
      </button>
    </form>
  );
}

interface BotEvent {
  at: string;
  kind: string;
  text: string;
  key: string;
}

function eventsOf(orders: Order[], notes: Notification[]): BotEvent[] {
  const fromOrders = orders.map((o) => ({
    at: o.created_at,
    kind: `order ${o.status}`,
    text: `${o.side} ${o.quantity} ${o.symbol} (${o.type})${o.average_price ? ` at ${price(o.average_price)}` : ""}${o.reason ? ` · ${o.reason}` : ""}`,
    key: `o${o.id}`,
  }));
  const fromNotes = notes
    .filter((n) => n.kind !== "trade.executed") // fills are in the orders and the trades
    .map((n) => ({ at: n.created_at, kind: n.kind, text: `${n.title}: ${n.body}`, key: `n${n.id}` }));
  return [...fromOrders, ...fromNotes].sort((a, b) => b.at.localeCompare(a.at)).slice(0, 100);
}

function DeleteBot({ bot }: { bot: Bot }) {
  const remove = useAction();
  const [asking, setAsking] = useState(false);
  if (bot.status === "running") return null;
  return asking ? (
    <div class="confirm" role="alertdialog" aria-labelledby="delete-q">
      <p id="delete-q">Delete this bot? Its balance returns to the wallet; its trades stay in your history.</p>
      <button
        type="button"
        class="danger"
        onClick={async () => {
          const done = await remove.run(async () => {
            await api(`/trading/bots/${bot.id}`, { method: "DELETE" });
            return true;
          });
          if (done) {
            toast("Bot deleted", bot.name ?? bot.symbol, "good");
            go("bots");
          }
        }}
      >
        Delete
      </button>{" "}
      <button type="button" onClick={() => setAsking(false)}>
        Keep it
      </button>
      {remove.error ? <Problem error={remove.error} what="The bot was not deleted" /> : null}
    </div>
  ) : (
    <button type="button" class="ghost" onClick={() => setAsking(true)}>
      Delete bot…
    </button>
  );
}

export function BotPage({ id }: { id: string }) {
  const bot = useLoad(() => api<Bot>(`/trading/bots/${id}`), [id], 5000);
  const trades = useLoad(() => api<Page<Trade>>("/trading/trades", { query: { bot_id: id, limit: 200 } }), [id], 10000);
  const orders = useLoad(() => api<Page<Order>>("/trading/orders", { query: { bot_id: id, limit: 100 } }), [id], 10000);
  // The bot's earlier risk exits, blocks and failures: its notifications among the latest.
  const history = useLoad(() => api<Page<Notification>>("/notifications", { query: { limit: 200 } }), [id]);
  // Trades are stamped by the wall clock, candles by the exchange's (a fast sim runs ahead).
  const exchanges = useLoad(() => api<{ exchanges: Exchange[] }>("/market/exchanges"), []);
  const [live, setLive] = useState<Notification[]>([]);
  useEffect(
    () =>
      onNotification((note) => {
        if (note.data?.bot_id !== id) return;
        setLive((prev) => [note, ...prev].slice(0, 100));
        bot.reload();
        trades.reload();
        orders.reload();
      }),
    [id],
  );
  const venue = exchanges.data?.exchanges.find((e) => e.id === bot.data?.exchange);
  const markers = useMemo<Marker[]>(
    () =>
      (trades.data?.items ?? []).map((t) => ({
        time: exchangeTime(venue, Date.parse(t.timestamp)),
        side: t.side === "BUY" ? ("buy" as const) : ("sell" as const),
        text: `${t.side === "BUY" ? "Buy" : "Sell"} ${price(t.price)}`,
      })),
    [trades.data, venue],
  );
  const events = useMemo(() => {
    const earlier = (history.data?.items ?? []).filter((n) => n.data?.bot_id === id && !live.some((l) => l.id === n.id));
    return eventsOf(orders.data?.items ?? [], [...live, ...earlier]);
  }, [orders.data, live, history.data]);
  const b = bot.data;
  if (bot.error && !b) {
    return (
      <main id="main" class="page" tabIndex={-1}>
        <h1>Bot</h1>
        <Problem error={bot.error} what="This bot" />
        <a href={href("bots")}>← All bots</a>
      </main>
    );
  }
  if (!b) return <main id="main" class="page"><Spinner label="Loading the bot" /></main>;
  const position = b.position;
  const balances = b.balances && !Array.isArray(b.balances) ? Object.entries(b.balances as Record<string, string>) : [];
  return (
    <main id="main" class="page bot-page" tabIndex={-1}>
      <p>
        <a href={href("bots")}>← All bots</a>
      </p>
      <h1>
        {b.name ?? "Bot"} <StatusBadge status={b.status} />
      </h1>
      <p class="muted">
        {typeof b.strategy === "string" ? b.strategy : ""} · {b.symbol} {b.timeframe} on {b.exchange} · {b.mode}
        {b.last_candle_at ? ` · last candle ${when(b.last_candle_at)}` : ""}
      </p>
      <Part service="trading" what="This bot">
        <BotActions bot={b} onChange={(next) => bot.set(next)} />
        {b.error ? <p class="problem" role="alert">Error: {b.error}</p> : null}
        {b.paused_until ? <p class="notice">Paused until {when(b.paused_until)} (daily loss limit).</p> : null}
        <dl class="metrics">
          <div><dt>Capital</dt><dd>{money(b.capital)}</dd></div>
          <div><dt>Equity</dt><dd>{money(b.equity)}</dd></div>
          <div><dt>Realised PnL</dt><dd class={tone(b.realized_pnl)}>{signed(b.realized_pnl)}</dd></div>
          <div><dt>Open PnL</dt><dd class={tone(position?.unrealized_pnl)}>{signed(position?.unrealized_pnl ?? null)}</dd></div>
          <div><dt>PnL</dt><dd class={tone(b.pnl)}>{signed(b.pnl)}</dd></div>
          {b.last_signal ? (
            <div><dt>Last signal</dt><dd>{String(b.last_signal.action ?? "")} {String(b.last_signal.order_status ?? "")} {String(b.last_signal.note ?? "")}</dd></div>
          ) : null}
        </dl>
        <section class="card" aria-label="Chart with the bot's trades">
          <Part service="market" what="The chart">
            <LiveChart exchange={b.exchange} symbol={b.symbol} timeframe={b.timeframe} markers={markers} height={340} />
          </Part>
        </section>
        <div class="two">
          <section class="card" aria-labelledby="position-title">
            <h2 id="position-title">Position and balance</h2>
            {position && Number(position.quantity) > 0 ? (
              <dl class="facts">
                <dt>Quantity</dt><dd>{position.quantity}</dd>
                <dt>Entry</dt><dd>{price(position.average_entry_price ?? null)}</dd>
                <dt>Mark</dt><dd>{price(position.mark_price ?? null)}</dd>
                <dt>Unrealised</dt><dd class={tone(position.unrealized_pnl)}>{signed(position.unrealized_pnl ?? null)}</dd>
                <dt>Opened</dt><dd>{when(position.opened_at ?? null)}</dd>
              </dl>
            ) : (
              <Empty>No open position.</Empty>
            )}
            <h3>Balance</h3>
            <ul class="plain">
              {balances.map(([asset, amount]) => (
                <li key={asset}>
                  {asset}: {money(amount, 2)}
                </li>
              ))}
            </ul>
          </section>
          <section class="card events" aria-labelledby="events-title">
            <h2 id="events-title">Events</h2>
            {orders.error ? <Problem error={orders.error} what="Orders" /> : null}
            {events.length ? (
              <ol class="timeline" aria-live="polite">
                {events.map((e) => (
                  <li key={e.key}>
                    <time>{when(e.at)}</time> <span class="kind">{e.kind}</span> {e.text}
                  </li>
                ))}
              </ol>
            ) : (
              <Empty>No event yet{b.status === "running" ? ": the bot acts on its next closed candle." : "."}</Empty>
            )}
          </section>
        </div>
        <section class="card" aria-labelledby="bot-trades">
          <h2 id="bot-trades">Trades ({trades.data?.total ?? 0})</h2>
          {trades.error ? <Problem error={trades.error} what="Trades" /> : null}
          {trades.data?.items.length ? <TradeTable trades={trades.data.items} /> : <Empty>No trade yet.</Empty>}
        </section>
        <RiskSettings key={b.id} bot={b} onSaved={(next) => bot.set(next)} />
        <DeleteBot bot={b} />
      </Part>
    </main>
  );
}

export function TradeTable({ trades }: { trades: Trade[] }) {
  return (
    <div class="scroll">
      <table class="trades">
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Market</th>
            <th scope="col">Side</th>
            <th scope="col" class="num">Price</th>
            <th scope="col" class="num">Quantity</th>
            <th scope="col" class="num">Fee</th>
            <th scope="col" class="num">PnL</th>
          </tr>
        </thead>
        <tbody>
          {trades.map((t) => (
            <tr key={t.id} data-trade={t.id}>
              <td>{when(t.timestamp)}</td>
              <td>
                {t.symbol} · {t.exchange} · {t.mode}
              </td>
              <td class={t.side === "BUY" ? "up" : "down"}>{t.side}</td>
              <td class="num">{price(t.price)}</td>
              <td class="num">{t.quantity}</td>
              <td class="num">{money(t.fee, 2)}</td>
              <td class={`num ${tone(t.pnl)}`}>{signed(t.pnl)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
