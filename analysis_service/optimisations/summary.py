"""The result of an optimisation, from its finished studies (docs/trading.md, optimisation).

For each study (one per walk-forward fold): the trials (state, value, parameters, the
trial's metrics), the best trial, the parameter importances (PED-ANOVA: how much each
parameter decides whether a trial lands among the best 10 %; Optuna's default, fANOVA,
would need scikit-learn) and, with walk-forward, the best trial's parameters scored on the
fold's test window: in-sample and out-of-sample metrics side by side.

**Recommended parameters.** Without walk-forward: the best trial's (highest objective;
the lower trial number on a tie). With walk-forward: each fold's in-sample winner is
scored out of sample on that fold's test window, and the recommended parameters are the
winner with the highest out-of-sample objective (the later fold on a tie); a winner whose
test window gives no score (too few trades, an undefined ratio) is not eligible, and when
none is, the most recent fold's winner is recommended and the result says so. The best
parameters' backtest is the recommended parameters on every candle.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
import orjson
from optuna.importance import PedAnovaImportanceEvaluator, get_param_importances
from optuna.trial import FrozenTrial, TrialState

from analysis_service.optimisations.evaluation import backtest, score, trial_metrics
from analysis_service.optimisations.folds import Window
from analysis_service.optimisations.plan import Plan
from shared.backtest.report import result_json
from shared.candles import Candles

# User attributes a trial records (one journal write each).
OUTCOME = "outcome"  # {"metrics": {...}, "failure": "why" (failed trials only)}
SURPLUS = "surplus"  # started when no permit was left: never evaluated, never shown
ERROR = "error"  # an unexpected exception (state FAIL); a lost trial has none
TOP_TRIALS = 10


@dataclass
class Summary:
    result: dict[str, Any]  # the ``result`` of GET /analysis/optimisations/{id}
    trials: list[dict[str, Any]]  # rows of optimisation_trials
    best_params: dict[str, Any] | None
    best_value: float | None
    error: str | None  # why no parameters can be recommended


def trial_state(trial: FrozenTrial) -> str | None:
    """complete | failed (scored as failed) | error | lost; None for a surplus trial."""
    attrs = trial.user_attrs
    if attrs.get(SURPLUS):
        return None
    if trial.state == TrialState.COMPLETE:
        return "complete"
    if trial.state == TrialState.PRUNED:
        return "failed"
    if trial.state == TrialState.FAIL:
        return "error" if ERROR in attrs else "lost"
    return None  # still running or waiting: not part of a result


def trial_row(fold: int, trial: FrozenTrial, state: str) -> dict[str, Any]:
    outcome = trial.user_attrs.get(OUTCOME) or {}
    note: str | None = outcome.get("failure") or trial.user_attrs.get(ERROR)
    if state == "lost":
        note = "its worker stopped during the trial; another trial ran in its place"
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    return {
        "fold": fold,
        "number": trial.number,
        "state": state,
        "value": _finite(trial.value) if state == "complete" else None,
        "params": dict(trial.params),
        "metrics": outcome.get("metrics"),
        "note": note,
        "duration_s": duration,
    }


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def importances(study: optuna.Study, complete: list[FrozenTrial]) -> dict[str, float] | None:
    if len(complete) < 2:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            found = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
    except (ValueError, RuntimeError, ZeroDivisionError):
        return None
    return {name: round(float(v), 6) if math.isfinite(v) else 0.0 for name, v in found.items()}


def _best(complete: list[FrozenTrial]) -> FrozenTrial | None:
    if not complete:
        return None
    return max(complete, key=lambda t: (float(t.value or 0.0), -t.number))


def _counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    counts = dict.fromkeys(("complete", "failed", "error", "lost"), 0)
    for row in rows:
        counts[row["state"]] += 1
    return counts


def summarise(
    plan: Plan,
    candles: Candles,
    windows: list[Window],
    studies: list[optuna.Study],
    *,
    max_points: int,
) -> Summary:
    """The result of every study so far (a cancelled run's summary is what was done)."""
    folds: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    winners: list[tuple[Window, FrozenTrial, float | None]] = []
    for window, study in zip(windows, studies, strict=True):
        fold_rows = []
        complete: list[FrozenTrial] = []
        for trial in study.get_trials(deepcopy=False):
            state = trial_state(trial)
            if state is None:
                continue
            fold_rows.append(trial_row(window.fold, trial, state))
            if state == "complete":
                complete.append(trial)
        rows += fold_rows
        best = _best(complete)
        fold = window.to_json(candles.timestamp)
        fold["trials"] = _counts(fold_rows)
        fold["importances"] = importances(study, complete)
        fold["best"] = None
        if best is not None:
            in_sample = (best.user_attrs.get(OUTCOME) or {}).get("metrics")
            fold["best"] = {
                "trial": best.number,
                "params": dict(best.params),
                "in_sample_value": best.value,
                "in_sample": in_sample,
            }
            oos_value = None
            if window.test_stop is not None:
                oos_value, oos = _out_of_sample(plan, candles, window, best)
                fold["best"].update(oos)
            winners.append((window, best, oos_value))
        folds.append(fold)

    counts = _counts(rows)
    base: dict[str, Any] = {
        "objective": plan.objective,
        "trials": {**counts, "requested": plan.trials_total},
        "importances": _mean_importances([f["importances"] for f in folds]),
        "top_trials": sorted(
            (r for r in rows if r["state"] == "complete"),
            key=lambda r: (-(r["value"] or 0.0), r["fold"], r["number"]),
        )[:TOP_TRIALS],
    }
    if plan.folds:
        base["folds"] = folds
    else:
        base["study"] = folds[0]
    chosen, rule = _recommend(plan, winners)
    if chosen is None:
        failed = ", ".join(f"{k}: {v}" for k, v in counts.items() if v)
        return Summary(
            result={**base, "best": None, "backtest": None},
            trials=rows,
            best_params=None,
            best_value=None,
            error=(
                "no trial produced a score"
                + (f" ({failed})" if failed else "")
                + "; widen the space, lower min_trades or use more candles"
            ),
        )
    window, trial, oos_value = chosen
    strategy, stops = plan.space.build(trial.params)
    full = backtest(strategy, candles, plan.costs, stops)
    value = oos_value if plan.folds else trial.value
    recommended = {
        "fold": window.fold if plan.folds else None,
        "trial": trial.number,
        "params": dict(trial.params),
        "parameters": strategy.params.model_dump(mode="json"),
        "stops": stops,
        "value": value,
        "rule": rule,
    }
    if plan.folds:
        efficiency = _efficiency(folds)
        base["walk_forward"] = {"efficiency": efficiency, "rule": rule}
    result = {
        **base,
        "best": recommended,
        "backtest": orjson.loads(result_json(full, max_points=max_points)),
    }
    return Summary(
        result=result, trials=rows, best_params=dict(trial.params), best_value=value, error=None
    )


def _out_of_sample(
    plan: Plan, candles: Candles, window: Window, best: FrozenTrial
) -> tuple[float | None, dict[str, Any]]:
    """The fold winner on the fold's test window (warmed up on the candles before it)."""
    strategy, stops = plan.space.build(best.params)
    history, trade_from = window.test_with_history(candles)
    result = backtest(strategy, history, plan.costs, stops, trade_from=trade_from)
    metrics = trial_metrics(result.metrics)
    value, why = score(metrics, plan.objective)
    trades = int(metrics["n_trades"] or 0)
    if value is not None and trades < plan.min_trades:
        value, why = None, f"{trades} trades, fewer than min_trades ({plan.min_trades})"
    return value, {
        "out_of_sample_value": value,
        "out_of_sample": metrics,
        "out_of_sample_note": why or None,
    }


def _recommend(
    plan: Plan, winners: list[tuple[Window, FrozenTrial, float | None]]
) -> tuple[tuple[Window, FrozenTrial, float | None] | None, str]:
    if not winners:
        return None, ""
    if not plan.folds:
        return winners[0], "the best trial"
    scored = [w for w in winners if w[2] is not None]
    if not scored:
        return (
            winners[-1],
            "no fold winner scored out of sample: the most recent fold's winner",
        )
    best = max(scored, key=lambda w: (float(w[2] or 0.0), w[0].fold))
    return best, "the fold winner with the best out-of-sample objective"


def _efficiency(folds: list[dict[str, Any]]) -> float | None:
    """Mean out-of-sample objective over mean in-sample objective (1 = no decay)."""
    pairs = [
        (f["best"]["in_sample_value"], f["best"].get("out_of_sample_value"))
        for f in folds
        if f.get("best")
    ]
    pairs = [(i, o) for i, o in pairs if i is not None and o is not None]
    if not pairs:
        return None
    mean_in = sum(i for i, _ in pairs) / len(pairs)
    mean_out = sum(o for _, o in pairs) / len(pairs)
    return mean_out / mean_in if mean_in else None


def _mean_importances(found: list[dict[str, float] | None]) -> dict[str, float] | None:
    present = [f for f in found if f]
    if not present:
        return None
    names = sorted({name for f in present for name in f})
    mean = {name: sum(f.get(name, 0.0) for f in present) / len(present) for name in names}
    return dict(sorted(mean.items(), key=lambda item: -item[1]))
