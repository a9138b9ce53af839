// Backtests: a form generated from the strategy catalog, the job's progress, its result
// (metrics, equity and drawdown, trades as a table and as markers on the price chart),
// and the past backtests, several of which can be compared side by side.
import { useEffect, useMemo, useState } from "preact/hooks";
import { ApiError, api } from "../api/http";
import type { Backtest, BacktestMetrics, CatalogEntry, Page, SavedStrategy } from "../api/types";
import type { Marker } from "../components/Chart";
import { useCharts } from "../components/charts";
import { LiveChart, timeframeMs } from "../components/LiveChart";
import { MarketFields, useMarketChoice } from "../components/MarketFields";
import { SchemaForm, cleaned, defaults, parameterErrors } from "../components/SchemaForm";
import { Empty, Field, Part, Problem, Spinner, StatusBadge, useAction, useLoad } from "../components/ui";
import { percent, price, ratio, shortId, when } from "../format";
import { go, href, route } from "../router";

const DAY = 86_400_000;

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function BacktestForm() {
  const catalog = useLoad(() => api<Page<CatalogEntry>>("/analysis/backtests/strategies", { query: { limit: 200 } }), []);
  const saved = useLoad(() => api<Page<SavedStrategy>>("/trading/strategies", { query: { limit: 200 } }), []);
  const [strategy, setStrategy] = useState("ma_crossover");
  const [params, setParams] = useState<Record<string, unknown>>({});
  const market = useMarketChoice("BTC/USDT", "1h");
  const now = Date.now();
  const [start, setStart] = useState(isoDay(now - 60 * DAY));
  const [end, setEnd] = useState(isoDay(now - DAY));
  const [capital, setCapital] = useState("10000");
  const [fee, setFee] = useState(0.001);
  const [slippage, setSlippage] = useState(0);
  const [size, setSize] = useState(1);
  const [stopLoss, setStopLoss] = useState("");
  const [takeProfit, setTakeProfit] = useState("");
  const [trailing, setTrailing] = useState("");
  const submit = useAction();
  const entries = catalog.data?.items ?? [];
  const entry = entries.find((e) => e.name === strategy);

  useEffect(() => {
    if (entry) setParams(defaults(entry.parameters));
  }, [entry?.name]);

  function useSaved(id: string) {
    const chosen = saved.data?.items.find((s) => s.id === id);
    if (!chosen) return;
    setStrategy(chosen.strategy);
    setTimeout(() => setParams({ ...defaults(entries.find((e) => e.name === chosen.strategy)?.parameters), ...chosen.parameters }));
  }

  async function run(event: Event) {
    event.preventDefault();
    const job = await submit.run(() =>
      api<{ id: string }>("/analysis/backtests", {
        body: {
          strategy,
          parameters: cleaned(params),
          exchange: market.exchange || null,
          symbol: market.symbol,
          timeframe: market.timeframe,
          start: `${start}T00:00:00Z`,
          end: `${end}T00:00:00Z`,
          initial_capital: capital,
          fee,
          slippage,
          position_size: size,
          stop_loss: stopLoss === "" ? null : Number(stopLoss),
          take_profit: takeProfit === "" ? null : Number(takeProfit),
          trailing_stop: trailing === "" ? null : Number(trailing),
        },
      }),
    );
    if (job) go("backtests", job.id);
  }

  const errors = parameterErrors(submit.error);
  const fieldError = (name: string) => (submit.error instanceof ApiError ? submit.error.field(name) : undefined);
  const generalError = submit.error instanceof ApiError && Object.keys(errors).length ? null : submit.error;
  if (catalog.error && !catalog.data) return <Problem error={catalog.error} what="The strategy catalog" />;
  if (!catalog.data) return <Spinner label="Loading strategies" />;

  return (
    <form class="card backtest-form" onSubmit={run} aria-labelledby="new-backtest">
      <h2 id="new-backtest">New backtest</h2>
      <div class="row">
        <Field label="Strategy" hint={entry?.description}>
          <select name="strategy" value={strategy} onChange={(e) => setStrategy(e.currentTarget.value)}>
            {entries.map((e) => (
              <option key={e.name} value={e.name}>
                {e.name}
              </option>
            ))}
          </select>
        </Field>
        {saved.data?.items.length ? (
          <Field label="Or a saved strategy">
            <select onChange={(e) => useSaved(e.currentTarget.value)}>
              <option value="">—</option>
              {saved.data.items.map((s) => (
                <option key={s.id} value={s.id}>
                  {s.name} ({s.strategy})
                </option>
              ))}
            </select>
          </Field>
        ) : null}
      </div>
      {entry ? <SchemaForm schema={entry.parameters} values={params} onChange={setParams} errors={errors} idPrefix="bt" /> : null}
      <fieldset>
        <legend>Market and range</legend>
        <div class="row">
          <MarketFields market={market} error={fieldError} />
          <Field label="From (UTC)" error={fieldError("start")}>
            <input type="date" name="start" required value={start} onInput={(e) => setStart(e.currentTarget.value)} />
          </Field>
          <Field label="To (UTC)" error={fieldError("end")}>
            <input type="date" name="end" required value={end} onInput={(e) => setEnd(e.currentTarget.value)} />
          </Field>
        </div>
      </fieldset>
      <fieldset>
        <legend>Money and risk</legend>
        <div class="row">
          <Field label="Capital (quote)" error={fieldError("initial_capital")}>
            <input name="initial_capital" inputMode="decimal" required value={capital} onInput={(e) => setCapital(e.currentTarget.value)} />
          </Field>
          <Field label="Fee (fraction)" error={fieldError("fee")}>
            <input type="number" name="fee" step="any" min={0} max={0.1} value={fee} onInput={(e) => setFee(Number(e.currentTarget.value))} />
          </Field>
          <Field label="Slippage (fraction)" error={fieldError("slippage")}>
            <input type="number" name="slippage" step="any" min={0} max={0.1} value={slippage} onInput={(e) => setSlippage(Number(e.currentTarget.value))} />
          </Field>
          <Field label="Position size (of equity)" error={fieldError("position_size")}>
            <input type="number" name="position_size" step="any" min={0.01} max={1} value={size} onInput={(e) => setSize(Number(e.currentTarget.value))} />
          </Field>
          <Field label="Stop loss" hint="Fraction below entry, optional" error={fieldError("stop_loss")}>
            <input type="number" name="stop_loss" step="any" min={0} max={1} value={stopLoss} onInput={(e) => setStopLoss(e.currentTarget.value)} />
          </Field>
          <Field label="Take profit" hint="Fraction above entry, optional" error={fieldError("take_profit")}>
            <input type="number" name="take_profit" step="any" min={0} value={takeProfit} onInput={(e) => setTakeProfit(e.currentTarget.value)} />
          </Field>
          <Field label="Trailing stop" hint="Fraction below the high, optional" error={fieldError("trailing_stop")}>
            <input type="number" name="trailing_stop" step="any" min={0} max={1} value={trailing} onInput={(e) => setTrailing(e.currentTarget.value)} />
          </Field>
        </div>
      </fieldset>
      {generalError ? <Problem error={generalError} what="The backtest was refused" /> : null}
      <button type="submit" class="primary" disabled={submit.busy}>
        {submit.busy ? "Starting…" : "Run backtest"}
      </button>
    </form>
  );
}

const METRICS: [keyof BacktestMetrics, string, (v: number | null) => string][] = [
  ["final_equity", "Final equity", (v) => price(v)],
  ["total_return", "Total return", (v) => percent(v)],
  ["cagr", "CAGR", (v) => percent(v)],
  ["max_drawdown", "Max drawdown", (v) => percent(v)],
  ["sharpe", "Sharpe", (v) => ratio(v)],
  ["sortino", "Sortino", (v) => ratio(v)],
  ["win_rate", "Win rate", (v) => percent(v, 1)],
  ["profit_factor", "Profit factor", (v) => ratio(v)],
  ["n_trades", "Trades", (v) => String(v ?? "—")],
  ["exposure", "Exposure", (v) => percent(v, 1)],
];

function Metrics({ metrics }: { metrics: BacktestMetrics }) {
  return (
    <dl class="metrics">
      {METRICS.map(([key, label, show]) => (
        <div key={key}>
          <dt>{label}</dt>
          <dd class={key === "total_return" ? (metrics.total_return > 0 ? "up" : metrics.total_return < 0 ? "down" : "") : ""}>
            {show(metrics[key] as number | null)}
          </dd>
        </div>
      ))}
    </dl>
  );
}

function drawdown(curve: [number, number][]): [number, number][] {
  let peak = -Infinity;
  return curve.map(([t, v]) => {
    peak = Math.max(peak, v);
    return [t, peak > 0 ? (v / peak - 1) * 100 : 0];
  });
}

const ms = (value: string | number) => (typeof value === "number" ? value : Date.parse(value));

function LineChart(props: { series: { name: string; color: string; points: [number, number][] }[]; label: string; height?: number }) {
  const charts = useCharts();
  return charts ? <charts.LineChart {...props} /> : <Spinner label="Loading the chart" />;
}

function BacktestResult({ id }: { id: string }) {
  const job = useLoad(() => api<Backtest>(`/analysis/backtests/${id}`), [id]);
  const status = job.data?.status;
  useEffect(() => {
    if (status !== "queued" && status !== "running") return;
    const timer = setInterval(job.reload, 700);
    return () => clearInterval(timer);
  }, [status]);
  const result = job.data?.result;
  const curve = result?.equity_curve ?? [];
  const equity = useMemo(() => [{ name: "Equity", color: "#38bdf8", points: curve }], [result]);
  const drop = useMemo(() => [{ name: "Drawdown %", color: "#f87171", points: drawdown(curve) }], [result]);
  const markers = useMemo<Marker[]>(
    () =>
      (result?.trades ?? []).flatMap((t) => [
        { time: ms(t.entry_at), side: "buy" as const, text: `Buy ${price(t.entry_price)}` },
        { time: ms(t.exit_at), side: "sell" as const, text: `Sell ${t.exit_reason}` },
      ]),
    [result],
  );
  if (job.error && !job.data) return <Problem error={job.error} what="The backtest" />;
  const b = job.data;
  if (!b) return <Spinner label="Loading the backtest" />;
  const startMs = b.start ? Date.parse(b.start) : curve[0]?.[0];
  const endMs = b.end ? Date.parse(b.end) : curve[curve.length - 1]?.[0];
  const step = timeframeMs(b.timeframe ?? "1h");
  const span = startMs && endMs ? Math.min(5000, Math.ceil((endMs - startMs) / step) + 1) : 500;
  return (
    <section class="card result" aria-labelledby="bt-title">
      <h2 id="bt-title">
        Backtest {shortId(b.id)} <StatusBadge status={b.status} />
      </h2>
      <p class="muted">
        {b.strategy} {JSON.stringify(b.parameters)} · {b.symbol} {b.timeframe} on {b.exchange ?? "default"} · {when(b.start ?? null)} → {when(b.end ?? null)}
      </p>
      {b.status === "queued" || b.status === "running" ? (
        <div class="progress-wrap">
          <progress max={1} value={b.progress} aria-label="Backtest progress" />
          <span>{Math.round(b.progress * 100)}%</span>
        </div>
      ) : null}
      {b.status === "failed" ? <p class="problem" role="alert">The backtest failed: {b.error}</p> : null}
      {result ? (
        <>
          <Metrics metrics={result.metrics} />
          <h3>Equity</h3>
          <LineChart series={equity} label="Equity curve" />
          <h3>Drawdown</h3>
          <LineChart series={drop} label="Drawdown curve" height={160} />
          {b.symbol && b.timeframe ? (
            <>
              <h3>Trades on the price</h3>
              <LiveChart exchange={b.exchange ?? ""} symbol={b.symbol} timeframe={b.timeframe} since={startMs} limit={span} markers={markers} live={false} height={360} />
            </>
          ) : null}
          <h3>Trades ({result.trades.length})</h3>
          {result.trades.length ? (
            <div class="scroll">
              <table class="trades">
                <thead>
                  <tr>
                    <th scope="col">Entry</th>
                    <th scope="col">Exit</th>
                    <th scope="col" class="num">Entry price</th>
                    <th scope="col" class="num">Exit price</th>
                    <th scope="col" class="num">Quantity</th>
                    <th scope="col" class="num">PnL</th>
                    <th scope="col" class="num">Fee</th>
                    <th scope="col">Exit reason</th>
                  </tr>
                </thead>
                <tbody>
                  {result.trades.map((t, i) => (
                    <tr key={i}>
                      <td>{when(t.entry_at)}</td>
                      <td>{when(t.exit_at)}</td>
                      <td class="num">{price(t.entry_price)}</td>
                      <td class="num">{price(t.exit_price)}</td>
                      <td class="num">{t.quantity.toFixed(6)}</td>
                      <td class={`num ${t.pnl > 0 ? "up" : t.pnl < 0 ? "down" : ""}`}>{price(t.pnl)}</td>
                      <td class="num">{price(t.fee)}</td>
                      <td>{t.exit_reason}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : (
            <Empty>The strategy made no trade over this range.</Empty>
          )}
        </>
      ) : null}
    </section>
  );
}

const COMPARE_COLORS = ["#38bdf8", "#f59e0b", "#a78bfa", "#34d399"];

function Compare({ ids }: { ids: string[] }) {
  const jobs = useLoad(() => Promise.all(ids.map((id) => api<Backtest>(`/analysis/backtests/${id}`))), [ids.join(",")]);
  const series = useMemo(
    () =>
      (jobs.data ?? []).map((b, i) => {
        const curve = b.result?.equity_curve ?? [];
        const first = curve[0]?.[1] || 1;
        return { name: shortId(b.id), color: COMPARE_COLORS[i % COMPARE_COLORS.length], points: curve.map(([t, v]) => [t, (v / first) * 100] as [number, number]) };
      }),
    [jobs.data],
  );
  if (jobs.error) return <Problem error={jobs.error} what="The comparison" />;
  if (!jobs.data) return <Spinner label="Loading the comparison" />;
  return (
    <section class="card" aria-labelledby="compare-title">
      <h2 id="compare-title">Side by side</h2>
      <div class="scroll">
        <table class="compare">
          <thead>
            <tr>
              <th scope="col">Metric</th>
              {jobs.data.map((b, i) => (
                <th scope="col" key={b.id} class="num" style={{ color: COMPARE_COLORS[i % COMPARE_COLORS.length] }}>
                  {shortId(b.id)}
                  <br />
                  <small>
                    {b.strategy} {b.symbol} {b.timeframe}
                  </small>
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {METRICS.map(([key, label, show]) => (
              <tr key={key}>
                <th scope="row">{label}</th>
                {jobs.data!.map((b) => (
                  <td key={b.id} class="num">
                    {b.result ? show(b.result.metrics[key] as number | null) : b.status}
                  </td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3>Equity, rebased to 100</h3>
      <LineChart series={series} label="Equity curves compared" />
    </section>
  );
}

function PastBacktests({ current }: { current?: string }) {
  const list = useLoad(() => api<Page<Backtest>>("/analysis/backtests", { query: { limit: 50 } }), [current], 5000);
  const [picked, setPicked] = useState<string[]>([]);
  const [comparing, setComparing] = useState<string[]>([]);
  if (list.error && !list.data) return <Problem error={list.error} what="Past backtests" />;
  if (!list.data) return <Spinner label="Loading past backtests" />;
  const toggle = (id: string) => setPicked(picked.includes(id) ? picked.filter((x) => x !== id) : [...picked, id].slice(-4));
  return (
    <>
      <section class="card" aria-labelledby="past-title">
        <h2 id="past-title">Past backtests ({list.data.total})</h2>
        {list.data.items.length ? (
          <>
            <div class="scroll">
              <table class="backtests">
                <thead>
                  <tr>
                    <th scope="col">
                      <span class="sr-only">Compare</span>
                    </th>
                    <th scope="col">Backtest</th>
                    <th scope="col">Strategy</th>
                    <th scope="col">Market</th>
                    <th scope="col">Status</th>
                    <th scope="col" class="num">Return</th>
                    <th scope="col" class="num">Max DD</th>
                    <th scope="col" class="num">Trades</th>
                    <th scope="col">Created</th>
                  </tr>
                </thead>
                <tbody>
                  {list.data.items.map((b) => (
                    <tr key={b.id} class={b.id === current ? "selected" : ""}>
                      <td>
                        <input type="checkbox" aria-label={`Compare ${shortId(b.id)}`} checked={picked.includes(b.id)} disabled={b.status !== "done"} onChange={() => toggle(b.id)} />
                      </td>
                      <td>
                        <a href={href("backtests", b.id)}>{shortId(b.id)}</a>
                      </td>
                      <td>{b.strategy}</td>
                      <td>
                        {b.symbol} {b.timeframe}
                      </td>
                      <td>
                        <StatusBadge status={b.status} />
                      </td>
                      <td class="num">{percent(b.metrics?.total_return)}</td>
                      <td class="num">{percent(b.metrics?.max_drawdown)}</td>
                      <td class="num">{b.metrics?.n_trades ?? "—"}</td>
                      <td>{when(b.created_at)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <button type="button" disabled={picked.length < 2} onClick={() => setComparing(picked)}>
              Compare {picked.length || ""} side by side
            </button>
          </>
        ) : (
          <Empty>No backtest yet: run your first one above.</Empty>
        )}
      </section>
      {comparing.length >= 2 ? <Compare ids={comparing} /> : null}
    </>
  );
}

export function BacktestsPage({ id }: { id?: string }) {
  void route.value;
  return (
    <main id="main" class="page backtests-page" tabIndex={-1}>
      <h1>Backtests</h1>
      <Part service="analysis" what="Backtests">
        {id ? (
          <>
            <p>
              <a href={href("backtests")}>← New backtest</a>
            </p>
            <BacktestResult id={id} />
          </>
        ) : (
          <BacktestForm />
        )}
        <PastBacktests current={id} />
      </Part>
    </main>
  );
}
