"""A self-contained HTML report of an optimisation: the optimisation history, parameter
importances, in-sample and out-of-sample metrics per walk-forward fold, the best trials
and the recommended parameters' equity curve.

Built from the very body ``GET /analysis/optimisations/{id}`` returns and its trial table,
so the API (``GET .../report``) and ``tradebot optimise`` write the same page. No
JavaScript, no external file: the charts are inline SVG.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

WIDTH, HEIGHT, PAD = 960, 280, 56
COLOURS = ("#264653", "#2a9d8f", "#e9c46a", "#f4a261", "#e76f51", "#6d597a", "#457b9d")
PERCENT = {"total_return", "max_drawdown", "win_rate", "exposure", "cagr"}


def _e(value: Any) -> str:
    return html.escape(str(value))


def _fmt(name: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if name in PERCENT:
            return f"{value * 100:,.2f} %"
        return f"{value:,.4g}"
    return str(value)


def _scale(lo: float, hi: float, size: float, *, flip: bool) -> Any:
    if hi <= lo:
        hi = lo + (abs(lo) * 0.01 or 1.0)

    def at(v: float) -> float:
        frac = (v - lo) / (hi - lo)
        return PAD / 2 + (1 - frac) * (size - PAD) if flip else PAD + frac * (size - 2 * PAD)

    return at


def history_svg(trials: Sequence[Mapping[str, Any]]) -> str:
    """Each complete trial's value by trial order (one colour per fold) and the best so far."""
    points = [t for t in trials if t["state"] == "complete" and t["value"] is not None]
    if not points:
        return "<p>No complete trial.</p>"
    ordered = sorted(points, key=lambda t: (t["fold"], t["number"]))
    values = [float(t["value"]) for t in ordered]
    x = _scale(0, max(len(ordered) - 1, 1), WIDTH, flip=False)
    y = _scale(min(values), max(values), HEIGHT, flip=True)
    parts = [f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">']
    lo, hi = min(values), max(values)
    for k in range(5):
        v = lo + (hi - lo) * k / 4
        parts.append(
            f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
            f'<text x="{PAD - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10">'
            f"{v:,.3g}</text>"
        )
    lines: list[list[str]] = []  # the best so far, one line per fold
    fold, running = None, -math.inf
    for i, (trial, value) in enumerate(zip(ordered, values, strict=True)):
        if trial["fold"] != fold:
            fold, running = trial["fold"], -math.inf
            lines.append([])
        running = max(running, value)
        colour = COLOURS[int(trial["fold"]) % len(COLOURS)]
        parts.append(
            f'<circle cx="{x(i):.1f}" cy="{y(value):.1f}" r="2.4" fill="{colour}" '
            f'fill-opacity="0.6"><title>fold {trial["fold"]} trial {trial["number"]}: '
            f"{value:.4g}</title></circle>"
        )
        lines[-1].append(f"{x(i):.1f},{y(running):.1f}")
    parts += [
        f'<polyline points="{" ".join(line)}" fill="none" stroke="#e76f51" stroke-width="1.5"/>'
        for line in lines
    ]
    parts.append(
        f'<text x="{PAD}" y="{HEIGHT - 6}" font-size="10">first trial</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" font-size="10" text-anchor="end">'
        f"trial {len(ordered)}</text>"
        + (
            f'<text x="{WIDTH / 2}" y="{HEIGHT - 6}" font-size="10" text-anchor="middle">'
            "points: complete trials, one colour per fold; line: best so far</text>"
        )
        + "</svg>"
    )
    return "".join(parts)


def importance_svg(importances: Mapping[str, float] | None) -> str:
    if not importances:
        return "<p>Not enough complete trials to rank the parameters.</p>"
    rows = list(importances.items())
    bar_h, label_w = 22, 180
    height = bar_h * len(rows) + 10
    width = WIDTH - label_w - 80
    parts = [f'<svg viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, (name, value) in enumerate(rows):
        y = 5 + i * bar_h
        w = max(1.0, float(value) * width)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12">{_e(name)}'
            f'</text><rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{bar_h - 6}" '
            f'fill="#2a9d8f"/><text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="11">'
            f"{float(value) * 100:.1f} %</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def equity_svg(curve: Sequence[Sequence[float]] | None) -> str:
    if not curve:
        return "<p>No backtest.</p>"
    ts = [float(p[0]) for p in curve]
    eq = [float(p[1]) for p in curve]
    x = _scale(ts[0], ts[-1], WIDTH, flip=False)
    y = _scale(min(eq), max(eq), HEIGHT, flip=True)
    line = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in zip(ts, eq, strict=True))

    def day(ms: float) -> str:
        return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")

    return (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline points="{line}" fill="none" stroke="#264653" stroke-width="1.2"/>'
        f'<text x="{PAD - 4}" y="{y(max(eq)) + 4:.1f}" text-anchor="end" font-size="10">'
        f"{max(eq):,.0f}</text>"
        f'<text x="{PAD - 4}" y="{y(min(eq)) + 4:.1f}" text-anchor="end" font-size="10">'
        f"{min(eq):,.0f}</text>"
        f'<text x="{PAD}" y="{HEIGHT - 6}" font-size="10">{day(ts[0])}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 6}" font-size="10" text-anchor="end">'
        f"{day(ts[-1])}</text></svg>"
    )


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    header = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def _params(params: Mapping[str, Any] | None) -> str:
    return _e(", ".join(f"{k}={v}" for k, v in (params or {}).items())) or "n/a"


def folds_table(objective: str, folds: Sequence[Mapping[str, Any]]) -> str:
    """In-sample beside out-of-sample, per fold: over-fitting shows as the gap."""
    metrics = ("total_return", "sharpe", "max_drawdown", "n_trades")
    head = ["fold", "train", "test", "parameters", f"{objective} in", f"{objective} out"]
    head += [f"{m} in / out" for m in metrics]
    rows = []
    for fold in folds:
        best = fold.get("best") or {}
        ins, outs = best.get("in_sample") or {}, best.get("out_of_sample") or {}
        train, test = fold.get("train") or {}, fold.get("test") or {}
        rows.append(
            [
                _e(fold["fold"]),
                _e(f"{train.get('start', '')[:10]} .. {train.get('end', '')[:10]}"),
                _e(f"{test.get('start', '')[:10]} .. {test.get('end', '')[:10]}"),
                _params(best.get("params")),
                _e(_fmt(objective, best.get("in_sample_value"))),
                _e(_fmt(objective, best.get("out_of_sample_value"))),
                *(_e(f"{_fmt(m, ins.get(m))} / {_fmt(m, outs.get(m))}") for m in metrics),
            ]
        )
    return _table(head, rows)


def render_report(body: Mapping[str, Any], trials: Sequence[Mapping[str, Any]]) -> str:
    """The report as one HTML document."""
    result = body.get("result") or {}
    objective = str(body.get("objective", ""))
    title = f"Optimisation of {body.get('strategy')}" + (
        f" on {body.get('symbol')} {body.get('timeframe')}" if body.get("symbol") else ""
    )
    best = result.get("best") or {}
    counts = result.get("trials") or {}
    backtest = result.get("backtest") or {}
    sections = [
        f"<h1>{_e(title)}</h1>",
        f"<p>status {_e(body.get('status'))}; objective {_e(objective)}; sampler "
        f"{_e(body.get('sampler'))}; trials: "
        + _e(", ".join(f"{k} {v}" for k, v in counts.items() if v is not None))
        + "</p>",
    ]
    if body.get("error"):
        sections.append(f"<p><strong>{_e(body['error'])}</strong></p>")
    sections.append("<h2>Recommended parameters</h2>")
    if best:
        sections.append(
            f"<p><strong>{_params(best.get('params'))}</strong> ({_e(best.get('rule', ''))}; "
            f"{_e(objective)} {_e(_fmt(objective, best.get('value')))})</p>"
            f"<p>Strategy parameters: {_params(best.get('parameters'))}</p>"
        )
    else:
        sections.append("<p>None.</p>")
    sections += ["<h2>Optimisation history</h2>", history_svg(trials)]
    sections += ["<h2>Parameter importances</h2>", importance_svg(result.get("importances"))]
    folds = result.get("folds")
    if folds:
        efficiency = (result.get("walk_forward") or {}).get("efficiency")
        sections += [
            "<h2>Walk-forward: in-sample and out-of-sample per fold</h2>",
            f"<p>Walk-forward efficiency (mean out-of-sample {_e(objective)} over mean "
            f"in-sample): {_e(_fmt(objective, efficiency))}</p>",
            folds_table(objective, folds),
        ]
    top = result.get("top_trials") or []
    if top:
        names = list((top[0].get("params") or {}).keys())
        sections += [
            "<h2>Best trials</h2>",
            _table(
                ["fold", "trial", objective, *names, "return", "trades"],
                [
                    [
                        _e(t["fold"]),
                        _e(t["number"]),
                        _e(_fmt(objective, t["value"])),
                        *(_e(t["params"].get(n)) for n in names),
                        _e(_fmt("total_return", (t.get("metrics") or {}).get("total_return"))),
                        _e((t.get("metrics") or {}).get("n_trades")),
                    ]
                    for t in top
                ],
            ),
        ]
    if backtest:
        metrics = backtest.get("metrics") or {}
        sections += [
            "<h2>Recommended parameters on every candle</h2>",
            equity_svg(backtest.get("equity_curve")),
            _table(["metric", "value"], [[_e(k), _e(_fmt(k, v))] for k, v in metrics.items()]),
        ]
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1.5em; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }}
th {{ text-align: left; }} svg {{ width: 100%; height: auto; }}
</style></head><body>
{"".join(sections)}
</body></html>
"""
