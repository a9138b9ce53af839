// Bots: the list with status, capital, realised and open PnL; saved strategies (a bot
// runs one); a bot created from a saved strategy, started and stopped from the list.
import { useEffect, useState } from "preact/hooks";
import { onNotification } from "../api/feeds";
import { ApiError, api } from "../api/http";
import type { Bot, CatalogEntry, Page, SavedStrategy } from "../api/types";
import { me } from "../state";
import { MarketFields, useMarketChoice } from "../components/MarketFields";
import { SchemaForm, cleaned, defaults, parameterErrors } from "../components/SchemaForm";
import { Empty, Field, Part, Problem, Spinner, StatusBadge, useAction, useLoad } from "../components/ui";
import { money, signed, tone } from "../format";
import { go, href } from "../router";
import { toast } from "../toasts";

function StrategyForm({ onSaved }: { onSaved: () => void }) {
  const catalog = useLoad(() => api<Page<CatalogEntry>>("/trading/strategies/catalog", { query: { limit: 200 } }), []);
  const [name, setName] = useState("");
  const [strategy, setStrategy] = useState("ma_crossover");
  const [params, setParams] = useState<Record<string, unknown>>({});
  const save = useAction();
  const entry = catalog.data?.items.find((e) => e.name === strategy);
  useEffect(() => {
    if (entry) setParams(defaults(entry.parameters));
  }, [entry?.name]);
  if (catalog.error && !catalog.data) return <Problem error={catalog.error} what="The strategy catalog" />;
  if (!catalog.data) return <Spinner label="Loading strategies" />;
  const errors = parameterErrors(save.error);
  return (
    <form
      class="card"
      aria-labelledby="new-strategy"
      onSubmit={async (e) => {
        e.preventDefault();
        const done = await save.run(() => api("/trading/strategies", { body: { name, strategy, parameters: cleaned(params), active: true } }));
        if (done) {
          toast("Strategy saved", name, "good");
          setName("");
          onSaved();
        }
      }}
    >
      <h2 id="new-strategy">Save a strategy</h2>
      <div class="row">
        <Field label="Name" error={save.error instanceof ApiError ? save.error.field("name") : undefined}>
          <input name="strategy-name" required maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <Field label="Strategy" hint={entry?.description}>
          <select name="strategy-kind" value={strategy} onChange={(e) => setStrategy(e.currentTarget.value)}>
            {catalog.data.items.map((c) => (
              <option key={c.name}>{c.name}</option>
            ))}
          </select>
        </Field>
      </div>
      {entry ? <SchemaForm schema={entry.parameters} values={params} onChange={setParams} errors={errors} idPrefix="st" /> : null}
      {save.error && !Object.keys(errors).length ? <Problem error={save.error} what="The strategy was refused" /> : null}
      <button type="submit" disabled={save.busy}>
        Save strategy
      </button>
    </form>
  );
}

const RISK_FIELDS: [string, string, string][] = [
  ["stop_loss", "Stop loss", "Fraction below entry, e.g. 0.02"],
  ["take_profit", "Take profit", "Fraction above entry"],
  ["trailing_stop", "Trailing stop", "Fraction below the high"],
  ["max_position_value", "Max position value", "Quote currency"],
  ["max_open_positions", "Max open positions", "Count"],
  ["daily_loss_limit", "Daily loss limit", "Quote currency; pauses the bot"],
];

function BotForm({ strategies, onCreated }: { strategies: SavedStrategy[]; onCreated: () => void }) {
  const market = useMarketChoice("BTC/USDT", "1m");
  const [strategyId, setStrategyId] = useState("");
  const [name, setName] = useState("");
  const [mode, setMode] = useState<"paper" | "live">("paper");
  const [capital, setCapital] = useState("1000");
  const [size, setSize] = useState("1");
  const [risk, setRisk] = useState<Record<string, string>>({});
  const create = useAction();
  const chosen = strategyId || strategies[0]?.id || "";
  const err = (field: string) => (create.error instanceof ApiError ? create.error.field(field) : undefined);
  const canLive = me.value?.permissions.includes("trade:live") ?? false;
  return (
    <form
      class="card"
      aria-labelledby="new-bot"
      onSubmit={async (e) => {
        e.preventDefault();
        const riskBody = Object.fromEntries(
          Object.entries(risk)
            .filter(([, v]) => v !== "")
            .map(([k, v]) => [k, k === "max_open_positions" ? Number(v) : k.endsWith("_value") || k === "daily_loss_limit" ? v : Number(v)]),
        );
        const bot = await create.run(() =>
          api<Bot>("/trading/bots", {
            body: { strategy_id: chosen, name: name || null, exchange: market.exchange, symbol: market.symbol, timeframe: market.timeframe, mode, capital, position_size: Number(size), risk: riskBody },
          }),
        );
        if (bot) {
          toast("Bot created", `${bot.name ?? bot.symbol} is stopped; start it when ready.`, "good");
          onCreated();
          go("bots", bot.id);
        }
      }}
    >
      <h2 id="new-bot">Create a bot</h2>
      {!strategies.length ? <Empty>Save a strategy first: a bot runs a saved strategy.</Empty> : null}
      <div class="row">
        <Field label="Strategy" error={err("strategy_id")}>
          <select name="strategy_id" value={chosen} onChange={(e) => setStrategyId(e.currentTarget.value)} required>
            {strategies.map((s) => (
              <option key={s.id} value={s.id}>
                {s.name} ({s.strategy})
              </option>
            ))}
          </select>
        </Field>
        <Field label="Name" error={err("name")}>
          <input name="bot-name" maxLength={100} value={name} onInput={(e) => setName(e.currentTarget.value)} />
        </Field>
        <MarketFields market={market} error={err} />
        <Field label="Mode" hint={canLive ? undefined : "Live trading needs the trade:live permission."} error={err("mode")}>
          <select name="mode" value={mode} onChange={(e) => setMode(e.currentTarget.value as "paper" | "live")}>
            <option value="paper">paper</option>
            <option value="live" disabled={!canLive}>
              live
            </option>
          </select>
        </Field>
        <Field label="Capital (quote)" hint={mode === "paper" ? "Moved out of your paper wallet." : undefined} error={err("capital")}>
          <input name="capital" inputMode="decimal" required value={capital} onInput={(e) => setCapital(e.currentTarget.value)} />
        </Field>
        <Field label="Position size" hint="Fraction of the bot's equity per entry" error={err("position_size")}>
          <input name="position_size" type="number" step="any" min={0.01} max={1} value={size} onInput={(e) => setSize(e.currentTarget.value)} />
        </Field>
      </div>
      <fieldset>
        <legend>Risk (optional)</legend>
        <div class="row">
          {RISK_FIELDS.map(([key, label, hint]) => (
            <Field key={key} label={label} hint={hint} error={err(key)}>
              <input name={key} inputMode="decimal" value={risk[key] ?? ""} onInput={(e) => setRisk({ ...risk, [key]: e.currentTarget.value })} />
            </Field>
          ))}
        </div>
      </fieldset>
      {create.error ? <Problem error={create.error} what="The bot was refused" /> : null}
      <button type="submit" class="primary" disabled={create.busy || !strategies.length}>
        Create bot
      </button>
    </form>
  );
}

export function BotActions({ bot, onChange }: { bot: Bot; onChange: (b: Bot) => void }) {
  const act = useAction();
  const call = (verb: "start" | "stop" | "close") =>
    act.run(async () => {
      const next = await api<Bot>(`/trading/bots/${bot.id}/${verb}`, { method: "POST" });
      onChange(next);
      toast(`Bot ${verb === "close" ? "position closed" : verb === "start" ? "started" : "stopped"}`, next.name ?? next.symbol, "good");
    });
  const running = bot.status === "running";
  return (
    <div class="actions">
      {running ? (
        <button type="button" onClick={() => void call("stop")} disabled={act.busy}>
          Stop
        </button>
      ) : (
        <button type="button" class="primary" onClick={() => void call("start")} disabled={act.busy}>
          {bot.status === "paused" || bot.status === "error" ? "Resume" : "Start"}
        </button>
      )}
      {!running && bot.position && Number(bot.position.quantity ?? 0) > 0 && bot.mode === "paper" ? (
        <button type="button" onClick={() => void call("close")} disabled={act.busy}>
          Close position
        </button>
      ) : null}
      {act.error ? <Problem error={act.error} /> : null}
    </div>
  );
}

export function BotsPage() {
  const bots = useLoad(() => api<Page<Bot>>("/trading/bots", { query: { limit: 200 } }), [], 5000);
  const strategies = useLoad(() => api<Page<SavedStrategy>>("/trading/strategies", { query: { limit: 200 } }), []);
  useEffect(() => onNotification((n) => n.data?.bot_id && bots.reload()), []);
  const removeStrategy = useAction();
  const update = (b: Bot) => bots.set({ ...bots.data!, items: bots.data!.items.map((x) => (x.id === b.id ? b : x)) });
  return (
    <main id="main" class="page bots-page" tabIndex={-1}>
      <h1>Bots</h1>
      <Part service="trading" what="Bots">
        <section class="card" aria-labelledby="bots-title">
          <h2 id="bots-title">Your bots</h2>
          {bots.error && !bots.data ? <Problem error={bots.error} what="Bots" /> : null}
          {!bots.data ? (
            bots.error ? null : <Spinner label="Loading bots" />
          ) : bots.data.items.length ? (
            <div class="scroll">
              <table class="bots">
                <thead>
                  <tr>
                    <th scope="col">Bot</th>
                    <th scope="col">Market</th>
                    <th scope="col">Strategy</th>
                    <th scope="col">Status</th>
                    <th scope="col" class="num">Capital</th>
                    <th scope="col" class="num">Equity</th>
                    <th scope="col" class="num">Realised PnL</th>
                    <th scope="col" class="num">Open PnL</th>
                    <th scope="col">Actions</th>
                  </tr>
                </thead>
                <tbody>
                  {bots.data.items.map((b) => {
                    const open = b.position?.unrealized_pnl ?? null;
                    return (
                      <tr key={b.id} data-bot={b.id}>
                        <th scope="row">
                          <a href={href("bots", b.id)}>{b.name ?? b.id.slice(0, 8)}</a>
                        </th>
                        <td>
                          {b.symbol} {b.timeframe} · {b.exchange} · {b.mode}
                        </td>
                        <td>{typeof b.strategy === "string" ? b.strategy : ""}</td>
                        <td>
                          <StatusBadge status={b.status} />
                        </td>
                        <td class="num">{money(b.capital)}</td>
                        <td class="num">{money(b.equity)}</td>
                        <td class={`num ${tone(b.realized_pnl)}`}>{signed(b.realized_pnl)}</td>
                        <td class={`num ${tone(open)}`}>{signed(open)}</td>
                        <td>
                          <BotActions bot={b} onChange={update} />
                        </td>
                      </tr>
                    );
                  })}
                </tbody>
              </table>
            </div>
          ) : (
            <Empty>No bot yet. Save a strategy, then create a bot from it below.</Empty>
          )}
        </section>
        <div class="two">
          <BotForm strategies={strategies.data?.items ?? []} onCreated={bots.reload} />
          <div>
            <StrategyForm onSaved={strategies.reload} />
            <section class="card" aria-labelledby="saved-title">
              <h2 id="saved-title">Saved strategies</h2>
              {strategies.error ? <Problem error={strategies.error} what="Saved strategies" /> : null}
              {removeStrategy.error ? <Problem error={removeStrategy.error} what="Delete" /> : null}
              <ul class="plain">
                {(strategies.data?.items ?? []).map((s) => (
                  <li key={s.id}>
                    <strong>{s.name}</strong> <span class="muted">{s.strategy}</span> <code>{JSON.stringify(s.parameters)}</code>{" "}
                    <button
                      type="button"
                      class="ghost small"
                      onClick={() => void removeStrategy.run(async () => {
                        await api(`/trading/strategies/${s.id}`, { method: "DELETE" });
                        strategies.reload();
                      })}
                    >
                      Delete
                    </button>
                  </li>
                ))}
              </ul>
            </section>
          </div>
        </div>
      </Part>
    </main>
  );
}
