// Paper trading by hand: orders (placed, listed, canceled), positions, trades and the
// paper wallet (reset to its starting amount).
import { useEffect, useState } from "preact/hooks";
import { onNotification } from "../api/feeds";
import { ApiError, api } from "../api/http";
import type { Balances, Order, Page, Position, Trade } from "../api/types";
import { MarketFields, useMarketChoice } from "../components/MarketFields";
import { Empty, Field, Part, Problem, Spinner, StatusBadge, useAction, useLoad } from "../components/ui";
import { money, price, signed, tone, when } from "../format";
import { toast } from "../toasts";
import { TradeTable } from "./Bot";

function OrderForm({ onPlaced }: { onPlaced: () => void }) {
  const market = useMarketChoice("BTC/USDT");
  const [side, setSide] = useState<"buy" | "sell">("buy");
  const [type, setType] = useState<"market" | "limit">("market");
  const [quantity, setQuantity] = useState("0.01");
  const [limit, setLimit] = useState("");
  const place = useAction();
  const err = (f: string) => (place.error instanceof ApiError ? place.error.field(f) : undefined);
  return (
    <form
      class="card"
      aria-labelledby="order-title"
      onSubmit={async (e) => {
        e.preventDefault();
        const order = await place.run(() =>
          api<Order>("/trading/orders", {
            body: {
              exchange: market.exchange,
              symbol: market.symbol,
              side,
              type,
              quantity,
              price: type === "limit" ? limit : null,
              mode: "paper",
              client_order_id: crypto.randomUUID(),
            },
          }),
        );
        if (order) {
          toast(`Order ${order.status}`, `${order.side} ${order.quantity} ${order.symbol}${order.average_price ? ` at ${price(order.average_price)}` : ""}`, "good");
          onPlaced();
        }
      }}
    >
      <h2 id="order-title">Paper order</h2>
      <div class="row">
        <MarketFields market={market} error={err} withTimeframe={false} />
        <Field label="Side">
          <select name="side" value={side} onChange={(e) => setSide(e.currentTarget.value as "buy" | "sell")}>
            <option value="buy">buy</option>
            <option value="sell">sell</option>
          </select>
        </Field>
        <Field label="Type">
          <select name="type" value={type} onChange={(e) => setType(e.currentTarget.value as "market" | "limit")}>
            <option value="market">market</option>
            <option value="limit">limit</option>
          </select>
        </Field>
        <Field label="Quantity (base)" error={err("quantity")}>
          <input name="quantity" inputMode="decimal" required value={quantity} onInput={(e) => setQuantity(e.currentTarget.value)} />
        </Field>
        {type === "limit" ? (
          <Field label="Limit price" error={err("price")}>
            <input name="price" inputMode="decimal" required value={limit} onInput={(e) => setLimit(e.currentTarget.value)} />
          </Field>
        ) : null}
      </div>
      {place.error ? <Problem error={place.error} what="The order was refused" /> : null}
      <button type="submit" class="primary" disabled={place.busy}>
        {side === "buy" ? "Buy" : "Sell"} {market.symbol}
      </button>
    </form>
  );
}

function Wallet({ balances, onReset }: { balances: Balances; onReset: () => void }) {
  const reset = useAction();
  const [asking, setAsking] = useState(false);
  return (
    <section class="card" aria-labelledby="wallet-title">
      <h2 id="wallet-title">Paper wallet</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">Asset</th>
            <th scope="col" class="num">Free</th>
            <th scope="col" class="num">Locked</th>
            <th scope="col" class="num">Total</th>
          </tr>
        </thead>
        <tbody>
          {balances.wallet.map((a) => (
            <tr key={a.asset}>
              <th scope="row">{a.asset}</th>
              <td class="num">{money(a.free)}</td>
              <td class="num">{money(a.locked)}</td>
              <td class="num">{money(a.total)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {balances.bots.length ? (
        <p class="muted">
          {balances.bots.length} bot{balances.bots.length > 1 ? "s" : ""} hold their own capital apart from the wallet.
        </p>
      ) : null}
      {asking ? (
        <div class="confirm" role="alertdialog" aria-labelledby="reset-q">
          <p id="reset-q">Reset the paper wallet? Open wallet orders are canceled and wallet positions closed; bots keep theirs.</p>
          <button
            type="button"
            class="danger"
            onClick={async () => {
              const done = await reset.run(async () => {
                await api("/trading/balances/reset", { method: "POST" });
                return true;
              });
              setAsking(false);
              if (done) {
                toast("Paper wallet reset", "", "good");
                onReset();
              }
            }}
          >
            Reset
          </button>{" "}
          <button type="button" onClick={() => setAsking(false)}>
            Keep it
          </button>
        </div>
      ) : (
        <button type="button" onClick={() => setAsking(true)}>
          Reset wallet…
        </button>
      )}
      {reset.error ? <Problem error={reset.error} what="Reset" /> : null}
    </section>
  );
}

export function TradingPage() {
  const balances = useLoad(() => api<Balances>("/trading/balances"), [], 10000);
  const orders = useLoad(() => api<Page<Order>>("/trading/orders", { query: { limit: 50 } }), [], 10000);
  const positions = useLoad(() => api<Page<Position>>("/trading/positions", { query: { status: "open", limit: 100 } }), [], 5000);
  const trades = useLoad(() => api<Page<Trade>>("/trading/trades", { query: { limit: 50 } }), [], 10000);
  const cancel = useAction();
  const refresh = () => {
    balances.reload();
    orders.reload();
    positions.reload();
    trades.reload();
  };
  useEffect(() => onNotification((n) => n.kind === "trade.executed" && refresh()), []);
  return (
    <main id="main" class="page trading-page" tabIndex={-1}>
      <h1>Paper trading</h1>
      <Part service="trading" what="Trading">
        <div class="two">
          <OrderForm onPlaced={refresh} />
          {balances.data ? <Wallet balances={balances.data} onReset={refresh} /> : balances.error ? <Problem error={balances.error} what="Balances" /> : <Spinner />}
        </div>
        <section class="card" aria-labelledby="positions-title">
          <h2 id="positions-title">Open positions</h2>
          {positions.error ? <Problem error={positions.error} what="Positions" /> : null}
          {positions.data?.items.length ? (
            <div class="scroll">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Market</th>
                    <th scope="col">Owner</th>
                    <th scope="col" class="num">Quantity</th>
                    <th scope="col" class="num">Entry</th>
                    <th scope="col" class="num">Mark</th>
                    <th scope="col" class="num">Unrealised</th>
                    <th scope="col" class="num">Realised</th>
                    <th scope="col">Opened</th>
                  </tr>
                </thead>
                <tbody>
                  {positions.data.items.map((p) => (
                    <tr key={p.id}>
                      <th scope="row">
                        {p.symbol} · {p.exchange}
                      </th>
                      <td>{p.bot_id ? `bot ${p.bot_id.slice(0, 8)}` : "wallet"}</td>
                      <td class="num">{p.quantity}</td>
                      <td class="num">{price(p.average_entry_price)}</td>
                      <td class="num">{price(p.mark_price)}</td>
                      <td class={`num ${tone(p.unrealized_pnl)}`}>{signed(p.unrealized_pnl)}</td>
                      <td class={`num ${tone(p.realized_pnl)}`}>{signed(p.realized_pnl)}</td>
                      <td>{when(p.opened_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : (
            <Empty>No open position.</Empty>
          )}
        </section>
        <section class="card" aria-labelledby="orders-title">
          <h2 id="orders-title">Orders</h2>
          {orders.error ? <Problem error={orders.error} what="Orders" /> : null}
          {cancel.error ? <Problem error={cancel.error} what="Cancel" /> : null}
          {orders.data?.items.length ? (
            <div class="scroll">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Time</th>
                    <th scope="col">Market</th>
                    <th scope="col">Side</th>
                    <th scope="col">Type</th>
                    <th scope="col" class="num">Quantity</th>
                    <th scope="col" class="num">Price</th>
                    <th scope="col" class="num">Filled</th>
                    <th scope="col">Status</th>
                    <th scope="col">Reason</th>
                    <th scope="col"><span class="sr-only">Actions</span></th>
                  </tr>
                </thead>
                <tbody>
                  {orders.data.items.map((o) => (
                    <tr key={o.id}>
                      <td>{when(o.created_at)}</td>
                      <td>{o.symbol}</td>
                      <td class={o.side === "buy" ? "up" : "down"}>{o.side}</td>
                      <td>{o.type}</td>
                      <td class="num">{o.quantity}</td>
                      <td class="num">{price(o.average_price ?? o.price)}</td>
                      <td class="num">{o.filled_quantity}</td>
                      <td>
                        <StatusBadge status={o.status} />
                      </td>
                      <td>{o.reason ?? ""}</td>
                      <td>
                        {o.status === "open" || o.status === "partially_filled" ? (
                          <button type="button" class="ghost small" onClick={() => void cancel.run(async () => { await api(`/trading/orders/${o.id}`, { method: "DELETE" }); refresh(); })}>
                            Cancel
                          </button>
                        ) : null}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : (
            <Empty>No order yet.</Empty>
          )}
        </section>
        <section class="card" aria-labelledby="trades-title">
          <h2 id="trades-title">Trades</h2>
          {trades.error ? <Problem error={trades.error} what="Trades" /> : null}
          {trades.data?.items.length ? <TradeTable trades={trades.data.items} /> : <Empty>No trade yet.</Empty>}
        </section>
      </Part>
    </main>
  );
}
