"""A backtest's result as the API serves it (JSON) and as a self-contained HTML report
(metrics, equity curve, drawdown, trades; for a portfolio also each pair's metrics and the
pair of each trade).

The JSON is built from the result's columns in whole arrays: a million candles make tens
of thousands of trades, and a Python object per trade and field took a second with the
GIL held. The HTML report has no JavaScript and no external files: the charts are inline
SVG, so the report opens anywhere and can be mailed as one file.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from shared.backtest.engine import EXIT_REASONS, BacktestResult
from shared.backtest.portfolio import PortfolioResult
from shared.candles import FloatArray, IntArray

WIDTH, HEIGHT, PAD = 960, 260, 48
MAX_POINTS = 1500
MAX_TRADE_ROWS = 500


def iso_times(timestamps_ms: IntArray) -> list[str]:
    """``datetime.isoformat()`` of each UTC time, ``Z`` for ``+00:00`` (fractions of a
    second only where there are some, as ``isoformat`` writes them)."""
    times = timestamps_ms.astype("datetime64[ms]")
    text = np.datetime_as_string(times, unit="s").astype(object)
    fractional = np.nonzero(timestamps_ms % 1000)[0]
    if fractional.size:
        text[fractional] = np.datetime_as_string(times[fractional], unit="us")
    return [f"{t}Z" for t in text.tolist()]


def result_json(result: BacktestResult, *, max_points: int | None = None) -> bytes:
    """The ``result`` object of ``GET /analysis/backtests/{id}`` (docs/api.md):
    ``{metrics, trades, equity_curve}``, the curve thinned to ``max_points``; a portfolio's
    adds ``pair_metrics`` and each trade's ``pair``."""
    ta = result.trade_arrays
    ts = result.timestamps
    columns = zip(
        iso_times(ts[ta.entry_index]),
        iso_times(ts[ta.exit_index]),
        ta.entry_price.tolist(),
        ta.exit_price.tolist(),
        ta.quantity.tolist(),
        ta.pnl.tolist(),
        ta.fee.tolist(),
        [EXIT_REASONS[reason] for reason in ta.reason.tolist()],
        strict=True,
    )
    trades = [
        {
            "entry_at": entry_at,
            "exit_at": exit_at,
            "entry_price": entry_price,
            "exit_price": exit_price,
            "quantity": quantity,
            "pnl": pnl,
            "fee": fee,
            "exit_reason": reason,
        }
        for entry_at, exit_at, entry_price, exit_price, quantity, pnl, fee, reason in columns
    ]
    if not isinstance(result, PortfolioResult):
        return orjson.dumps(
            {
                "metrics": result.metrics,
                "trades": trades,
                "equity_curve": result.equity_points(max_points),
            }
        )
    names = result.pairs or []
    pair_of = [] if result.trade_pair is None else result.trade_pair.tolist()
    return orjson.dumps(
        {
            "metrics": result.metrics,
            "pair_metrics": result.pair_metrics or {},
            "trades": [{"pair": names[p], **row} for p, row in zip(pair_of, trades, strict=True)],
            "equity_curve": result.equity_points(max_points),
        }
    )


def _thin(ts: IntArray, values: FloatArray) -> tuple[IntArray, FloatArray]:
    n = values.shape[0]
    if n <= MAX_POINTS:
        return ts, values
    index = np.unique(np.r_[np.linspace(0, n - 1, MAX_POINTS).astype(np.int64), n - 1])
    return ts[index], values[index]


def _date(ms: float) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _svg_line(
    ts: IntArray,
    values: FloatArray,
    *,
    colour: str,
    fill: bool = False,
    fmt: str = "{:,.2f}",
    markers: list[tuple[float, float, str]] | None = None,
) -> str:
    if ts.shape[0] == 0:
        return "<p>No data.</p>"
    x0, x1 = float(ts[0]), float(ts[-1]) if ts[-1] > ts[0] else float(ts[0]) + 1.0
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi <= lo:
        hi = lo + (abs(lo) * 0.01 or 1.0)

    def x(t: float) -> float:
        return PAD + (t - x0) / (x1 - x0) * (WIDTH - 2 * PAD)

    def y(v: float) -> float:
        return HEIGHT - PAD / 2 - (v - lo) / (hi - lo) * (HEIGHT - PAD)

    points = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts, values, strict=True))
    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">']
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(
            f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#e5e5e5"/>'
            f'<text x="{PAD - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10">'
            f"{html.escape(fmt.format(v))}</text>"
        )
    if fill:
        base = y(max(lo, min(hi, 0.0)))
        parts.append(
            f'<polygon points="{x(float(ts[0])):.1f},{base:.1f} {points} '
            f'{x(float(ts[-1])):.1f},{base:.1f}" fill="{colour}" fill-opacity="0.25"/>'
        )
    parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="1.2"/>')
    for t, v, mark_colour in markers or []:
        parts.append(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{mark_colour}"/>')
    parts.append(
        f'<text x="{PAD}" y="{HEIGHT - 4}" font-size="10">{_date(x0)}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 4}" font-size="10" text-anchor="end">'
        f"{_date(x1)}</text></svg>"
    )
    return "".join(parts)


PERCENT = {"total_return", "cagr", "max_drawdown", "win_rate", "exposure", "avg_trade_return"}
MONEY = {"final_equity", "pnl", "fees"}


def format_metric(name: str, value: Any) -> str:
    """A metric as people read it: percentages, money to the cent, n/a for none."""
    if value is None:
        return "n/a"
    if name in PERCENT:
        return f"{value * 100:,.2f} %"
    if isinstance(value, float):
        return f"{value:,.2f}" if name in MONEY else f"{value:,.4f}"
    return str(value)


def _metric(name: str, value: Any) -> str:
    return (
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(format_metric(name, value))}</td></tr>"
    )


def _pair_table(result: BacktestResult) -> str:
    """Each pair's metrics, one row per pair in pair-list order (portfolios only)."""
    if not isinstance(result, PortfolioResult) or not result.pair_metrics:
        return ""
    columns = list(next(iter(result.pair_metrics.values())))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = "".join(
        f"<tr><th>{html.escape(pair)}</th>"
        + "".join(f"<td>{html.escape(format_metric(c, metrics[c]))}</td>" for c in columns)
        + "</tr>"
        for pair, metrics in result.pair_metrics.items()
    )
    title = f"<h2>Pairs ({len(result.pair_metrics)})</h2>"
    return f"{title}<table><tr><th>pair</th>{head}</tr>{rows}</table>"


def render_html(result: BacktestResult, *, title: str = "Backtest") -> str:
    """The report as one HTML document."""
    ts, equity = _thin(result.timestamps, result.equity)
    _, drawdown = _thin(result.timestamps, -result.drawdown() * 100)
    trades = result.trades
    ta = result.trade_arrays
    marks: list[tuple[float, float, str]] = []
    if len(ta) <= 400:  # markers only while they stay readable
        for i in range(len(ta)):
            entry, exit_ = int(ta.entry_index[i]), int(ta.exit_index[i])
            marks.append((float(result.timestamps[entry]), float(result.equity[entry]), "#2a9d8f"))
            marks.append((float(result.timestamps[exit_]), float(result.equity[exit_]), "#e76f51"))
    settings = {k: v for k, v in result.settings.items() if v is not None}
    rows = []
    shown = trades if len(trades) <= MAX_TRADE_ROWS else trades[:MAX_TRADE_ROWS]
    portfolio = isinstance(result, PortfolioResult)
    for n, t in enumerate(shown, 1):
        colour = "#2a9d8f" if t.pnl > 0 else "#e76f51"
        pair = f"<td>{html.escape(getattr(t, 'pair', ''))}</td>" if portfolio else ""
        rows.append(
            f"<tr><td>{n}</td>{pair}<td>{t.entry_at:%Y-%m-%d %H:%M}</td>"
            f"<td>{t.exit_at:%Y-%m-%d %H:%M}</td><td>{t.entry_price:,.6g}</td>"
            f"<td>{t.exit_price:,.6g}</td><td>{t.quantity:,.6g}</td>"
            f'<td style="color:{colour}">{t.pnl:,.2f}</td><td>{t.fee:,.2f}</td>'
            f"<td>{html.escape(t.exit_reason)}</td></tr>"
        )
    more = (
        f"<p>Showing the first {MAX_TRADE_ROWS} of {len(trades)} trades.</p>"
        if len(trades) > MAX_TRADE_ROWS
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }}
th {{ text-align: left; }} svg {{ width: 100%; height: auto; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(", ".join(f"{k}={v}" for k, v in settings.items()))}</p>
<h2>Metrics</h2><table>{"".join(_metric(k, v) for k, v in result.metrics.items())}</table>
{_pair_table(result)}
<h2>Equity</h2>{_svg_line(ts, equity, colour="#264653", markers=marks)}
<h2>Drawdown (%)</h2>{_svg_line(ts, drawdown, colour="#e76f51", fill=True)}
<h2>Trades ({len(trades)})</h2>{more}
<table><tr><th>#</th>{"<th>pair</th>" if portfolio else ""}<th>entry</th><th>exit</th>
<th>entry price</th><th>exit price</th>
<th>quantity</th><th>pnl</th><th>fee</th><th>exit reason</th></tr>{"".join(rows)}</table>
</body></html>
"""


def write_report(result: BacktestResult, path: Path, *, title: str = "Backtest") -> Path:
    path.write_text(render_html(result, title=title), encoding="utf-8")
    return path
