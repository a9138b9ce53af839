"""Backtest jobs: accepted by the API, queued on a Redis Stream, run by any replica.

Creating a job validates everything that can be checked up front (strategy name and
parameters, candles, range size) so a bad request is a 422 and leaves nothing behind. A
user has at most ``backtest_max_jobs_per_user`` jobs queued or running; one more is a 429. The
row and a ``backtest.requested`` event are written in one transaction (the outbox), so the
job reaches the stream after the commit even if Redis blinks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from analysis_service.backtests import repository
from analysis_service.backtests.schemas import BacktestCreate, BacktestRead
from analysis_service.candle_input import candles_from_rows, to_ms
from analysis_service.market import TIMEFRAME_MS
from analysis_service.models import Backtest
from analysis_service.settings import AnalysisSettings
from shared.errors import NotFound, RateLimited, ValidationFailed
from shared.events import Event, stage
from shared.paging import PageParams
from shared.resample import TimeframeError, check_higher, spacing_ms
from shared.strategies import (
    StrategyParamsError,
    TradingStrategy,
    UnknownStrategyError,
    create_strategy,
)
from shared.validation import invalid_input

BACKTEST_REQUESTED = "backtest.requested"


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def _problem(message: str, *loc: str) -> ValidationFailed:
    return invalid_input(["body", *loc], message)


def build_strategy(name: str, params: dict[str, Any]) -> TradingStrategy:
    try:
        return create_strategy(name, params)
    except UnknownStrategyError as exc:
        raise _problem(str(exc), "strategy") from None
    except StrategyParamsError as exc:
        raise _problem(str(exc), "parameters") from None


def _check_timeframes(strategy: TradingStrategy, frame_ms: int, field: str) -> None:
    """A 422 for a strategy reading a timeframe below the candles' (the higher ones are
    aggregated from the candles: docs/trading.md, several timeframes)."""
    for timeframe in strategy.higher_timeframes():
        try:
            check_higher(frame_ms, timeframe)
        except TimeframeError as exc:
            raise _problem(str(exc), field) from None


class BacktestService:
    def __init__(self, session: AsyncSession, settings: AnalysisSettings) -> None:
        self.session = session
        self.settings = settings

    async def create(self, user_id: uuid.UUID, body: BacktestCreate) -> Backtest:
        """Validate, store the job and stage its event (sent after the commit)."""
        strategy = build_strategy(body.strategy, body.parameters)
        start_at, end_at = body.start, body.end
        if body.candles is not None:
            start_at, end_at = self._check_body_candles(body, strategy)
        else:
            if not (body.timeframe and body.start and body.end):  # the schema ensures these
                raise _problem("symbol, timeframe, start and end are required", "symbol")
            frame = TIMEFRAME_MS.get(body.timeframe)
            if frame is None:
                raise _problem(
                    f"unknown timeframe {body.timeframe!r}; use one of {', '.join(TIMEFRAME_MS)}",
                    "timeframe",
                )
            _check_timeframes(strategy, frame, "timeframe")
            expected = (to_ms(body.end) - to_ms(body.start)) // frame
            pairs = len(body.pairs or [None])
            if expected * pairs > self.settings.backtest_max_candles:
                each = f" for each of {pairs} pairs" if pairs > 1 else ""
                raise _problem(
                    f"the range holds about {expected} candles{each}; at most "
                    f"{self.settings.backtest_max_candles} in all (shorten it, use a longer "
                    "timeframe or fewer pairs)",
                    "start",
                )
            if expected < 2:
                raise _problem("the range holds fewer than 2 candles", "start")
        await self._check_job_bound(user_id)
        row = Backtest(
            user_id=user_id,
            status="queued",
            progress=0.0,
            strategy=strategy.name,
            parameters=strategy.params.model_dump(mode="json"),
            request=body.model_dump(mode="json"),
            exchange=body.exchange,
            symbol=body.symbol,
            pairs=body.pairs,
            timeframe=body.timeframe,
            start_at=start_at,
            end_at=end_at,
        )
        await repository.add(self.session, row)
        stage(
            self.session,
            Event(
                type=BACKTEST_REQUESTED,
                data={"backtest_id": str(row.id), "user_id": str(user_id)},
                source="analysis",
            ),
            stream=self.settings.backtest_stream,
        )
        return row

    def _check_body_candles(
        self, body: BacktestCreate, strategy: TradingStrategy
    ) -> tuple[datetime, datetime]:
        """The candles sent in the body, one pair's rows or a portfolio's object of pair ->
        rows: within the bound, each pair's well formed and fine enough for the strategy's
        higher timeframes; returns their time range."""
        by_pair = body.candles if isinstance(body.candles, dict) else {None: body.candles or []}
        total = sum(len(rows) for rows in by_pair.values())
        if total > self.settings.backtest_body_max_candles:
            raise _problem(
                f"at most {self.settings.backtest_body_max_candles} candles in a request "
                "body; load longer histories with symbol (or pairs), timeframe, start and end",
                "candles",
            )
        first, last = [], []
        for pair, rows in by_pair.items():
            where, of = ((), "") if pair is None else ((pair,), f"{pair}: ")
            try:
                candles = candles_from_rows(rows)
            except ValidationFailed as exc:
                if pair is None:
                    raise
                raise _problem(f"{of}{exc.detail}", "candles", *where) from None
            if len(candles) < 2:
                raise _problem(f"{of}a backtest needs at least 2 candles", "candles", *where)
            _check_timeframes(strategy, spacing_ms(candles.timestamp), "candles")
            first.append(int(candles.timestamp[0]))
            last.append(int(candles.timestamp[-1]))
        return _utc(min(first)), _utc(max(last))

    async def _check_job_bound(self, user_id: uuid.UUID) -> None:
        """429 when the user already has ``backtest_max_jobs_per_user`` jobs queued or
        running. The advisory lock holds until this request's commit, so two requests of
        one user (on any replica) cannot both take the last place."""
        await repository.lock_user_jobs(self.session, user_id)
        active = await repository.count_active_for_user(self.session, user_id)
        limit = self.settings.backtest_max_jobs_per_user
        if active >= limit:
            wait = self.settings.backtest_busy_retry_after_s
            raise RateLimited(
                f"You have {active} backtests queued or running, the most allowed at once "
                f"is {limit}; retry after one of them finishes (in about {wait} s).",
                retry_after=wait,
            )

    async def read_json(self, user_id: uuid.UUID, backtest_id: uuid.UUID) -> bytes:
        """The body of ``GET /analysis/backtests/{id}``: the job's fields, with its stored
        result JSON put in as it is (megabytes for a long run, never parsed again)."""
        row = await repository.get_for_user(self.session, backtest_id, user_id)
        if row is None:
            raise NotFound("no such backtest")
        return with_result(BacktestRead.model_validate(backtest_read(row)), row.result)

    async def page(self, user_id: uuid.UUID, page: PageParams) -> tuple[Sequence[Backtest], int]:
        """A page of the user's backtests, newest first, and how many there are."""
        rows = await repository.list_for_user(
            self.session, user_id, limit=page.limit, offset=page.offset
        )
        return rows, await repository.count_for_user(self.session, user_id)


def with_result(read: BacktestRead, result: str | None) -> bytes:
    """``read`` as JSON, ``result`` (JSON text or None) as its ``result``."""
    body = read.model_dump_json().encode()
    if result is None:
        return body
    # The last "result" key is the top level's: only timestamps follow it.
    marker = b',"result":null,'
    at = body.rindex(marker)
    return b"".join((body[:at], b',"result":', result.encode(), body[at + len(marker) - 1 :]))


def backtest_read(row: Backtest) -> dict[str, Any]:
    """The body of ``GET /analysis/backtests/{id}``, but for its ``result`` (see
    :func:`with_result`)."""
    request = row.request
    return {
        "id": row.id,
        "status": row.status,
        "progress": row.progress,
        "error": row.error,
        "strategy": row.strategy,
        "parameters": row.parameters,
        "exchange": row.exchange,
        "symbol": row.symbol,
        "pairs": row.pairs,
        "timeframe": row.timeframe,
        "start": row.start_at,
        "end": row.end_at,
        "settings": {
            key: request.get(key)
            for key in (
                "initial_capital",
                "fee",
                "slippage",
                "position_size",
                "max_open_positions",
                "stake_amount",
                "stop_loss",
                "take_profit",
                "trailing_stop",
            )
        },
        "result": None,
        "created_at": row.created_at,
        "started_at": row.started_at,
        "finished_at": row.finished_at,
    }


def backtest_summary(row: Backtest) -> dict[str, Any]:
    return {
        "id": row.id,
        "status": row.status,
        "progress": row.progress,
        "strategy": row.strategy,
        "parameters": row.parameters,
        "symbol": row.symbol,
        "pairs": row.pairs,
        "timeframe": row.timeframe,
        "created_at": row.created_at,
        "finished_at": row.finished_at,
        "metrics": row.metrics,
    }
