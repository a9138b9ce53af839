"""A checked optimisation: the search space, the costs, the scoring and the budget.

:func:`plan_of` turns the request's settings into a :class:`Plan` or raises
:class:`~analysis_service.optimisations.space.SpaceError` with what to fix. The API calls
it before storing anything; every worker calls it again on the stored request, so all of
them search the very same space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analysis_service.optimisations.schemas import StudySettings
from analysis_service.optimisations.space import SearchSpace, SpaceError, build_space

MAX_GRID_POINTS = 100_000


@dataclass(frozen=True)
class Costs:
    initial_capital: float
    fee: float
    slippage: float
    position_size: float


@dataclass(frozen=True)
class Plan:
    space: SearchSpace
    costs: Costs
    objective: str
    min_trades: int
    n_trials: int | None  # per fold; None: as many as the time budget allows
    timeout_s: float | None
    sampler: str
    seed: int | None
    folds: int | None
    anchored: bool

    @property
    def studies(self) -> int:
        """One Optuna study per fold (one in all without walk-forward)."""
        return self.folds or 1

    @property
    def trials_total(self) -> int | None:
        return None if self.n_trials is None else self.n_trials * self.studies


def plan_of(settings: StudySettings) -> Plan:
    """Check the settings against the strategy's schema and the sampler's needs."""
    space = build_space(
        settings.strategy,
        settings.parameters,
        {name: spec.model_dump(exclude_defaults=True) for name, spec in settings.space.items()},
        settings.stops(),
    )
    n_trials = settings.n_trials
    if settings.sampler == "grid":
        grid: dict[str, Any] | None = space.grid()
        if grid is None:
            listless = [d.name for d in space.dimensions if d.grid() is None]
            raise SpaceError(
                ["body", "sampler"],
                f"the grid sampler needs every value listed: give {', '.join(listless)} a "
                "step (or choices)",
            )
        size = space.grid_size() or 0
        if size > MAX_GRID_POINTS:
            raise SpaceError(
                ["body", "sampler"],
                f"the grid holds {size} points, more than {MAX_GRID_POINTS}: use larger steps "
                "or the tpe sampler",
            )
        # The grid is searched once: more trials than points would repeat points.
        n_trials = size if n_trials is None else min(n_trials, size)
    if settings.sampler == "cmaes":
        categorical = [d.name for d in space.dimensions if d.kind == "categorical"]
        if categorical or len(space.dimensions) < 2:
            raise SpaceError(
                ["body", "sampler"],
                "CMA-ES applies to two or more numeric parameters without choices"
                + (f" ({', '.join(categorical)} are choices)" if categorical else "")
                + ": use the tpe sampler",
            )
    return Plan(
        space=space,
        costs=Costs(
            initial_capital=float(settings.initial_capital),
            fee=settings.fee,
            slippage=settings.slippage,
            position_size=settings.position_size,
        ),
        objective=settings.objective,
        min_trades=settings.min_trades,
        n_trials=n_trials,
        timeout_s=settings.timeout_s,
        sampler=settings.sampler,
        seed=settings.seed,
        folds=settings.walk_forward.folds if settings.walk_forward else None,
        anchored=settings.walk_forward.anchored if settings.walk_forward else False,
    )
