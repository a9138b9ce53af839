"""The analysis service's internal API: a finished optimisation's recommended parameters
(``GET /analysis/internal/users/{user}/optimisations/{id}/best``), through the shared
:class:`~shared.service_client.ServiceClient` (which sends the internal token)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from shared.errors import NotFound
from shared.service_client import ServiceClient


@dataclass(frozen=True)
class OptimisedParameters:
    optimisation_id: uuid.UUID
    strategy: str
    parameters: dict[str, Any]
    stops: dict[str, float | None]
    objective: str
    value: float | None
    exchange: str | None
    symbol: str | None
    timeframe: str | None


class AnalysisClient:
    def __init__(self, http: ServiceClient) -> None:
        self._http = http

    async def best_parameters(
        self, user_id: uuid.UUID, optimisation_id: uuid.UUID
    ) -> OptimisedParameters:
        """404 (NotFound) for another user's or an unknown optimisation, 409 (Conflict)
        while it is not done; 503 when the analysis service is down."""
        body = await self._http.get(
            f"/analysis/internal/users/{user_id}/optimisations/{optimisation_id}/best",
            errors={404: lambda _: NotFound("No such optimisation.")},
        )
        return OptimisedParameters(
            optimisation_id=optimisation_id,
            strategy=str(body["strategy"]),
            parameters=dict(body["parameters"]),
            stops=dict(body.get("stops") or {}),
            objective=str(body["objective"]),
            value=body.get("value"),
            exchange=body.get("exchange"),
            symbol=body.get("symbol"),
            timeframe=body.get("timeframe"),
        )
