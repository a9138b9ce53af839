"""A bot from a finished optimisation (``POST /trading/bots`` with ``optimisation_id``):
the recommended parameters are fetched from the analysis service and saved as a strategy
of the user's, and the bot is created on it in the same transaction.

What the request leaves unsaid comes from the optimisation: the market, timeframe and
exchange it was run on (when it ran on stored candles), and the protective exits it used or
searched, where the request's ``risk`` sets none.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.validation import invalid_input
from trading_engine.analysis_client import AnalysisClient
from trading_engine.bots.schemas import BotCreate
from trading_engine.money import money
from trading_engine.strategies import service as strategies
from trading_engine.strategies.schemas import StrategyCreate


async def resolve(
    session: AsyncSession,
    user_id: uuid.UUID,
    optimisation_id: uuid.UUID,
    body: BotCreate,
    analysis: AnalysisClient,
) -> BotCreate:
    """``body`` on a new strategy holding the optimised parameters (and the
    optimisation's market and stops where the body is silent)."""
    best = await analysis.best_parameters(user_id, optimisation_id)
    strategy = await strategies.create(
        session,
        user_id,
        StrategyCreate(
            name=f"{best.strategy} optimised ({str(optimisation_id)[:8]})",
            strategy=best.strategy,
            parameters=best.parameters,
        ),
    )
    fields: dict[str, Any] = body.model_dump()
    given = body.model_fields_set
    if "timeframe" not in given and best.timeframe:
        fields["timeframe"] = best.timeframe
    if "exchange" not in given and best.exchange:
        fields["exchange"] = best.exchange
    if body.symbol is None and body.pairs is None:
        if not best.symbol:
            raise invalid_input(
                ["body", "symbol"], "The optimisation ran on posted candles: give symbol."
            )
        fields["symbol"] = best.symbol
    for name, value in best.stops.items():
        if value is not None and fields["risk"].get(name) is None:
            fields["risk"][name] = money(value)
    fields.update(strategy_id=strategy.id, optimisation_id=None)
    return BotCreate.model_validate(fields)
