"""`WS /market/ws`: the live price feed (docs/api.md, the price feed).

Client frames: ``{"op": "subscribe"|"unsubscribe", "symbols": [...], "exchange": "sim"}``
and ``{"op": "ping"}``. Server frames: ``ticker``, ``candle``, ``subscribed``,
``unsubscribed``, ``pong``, ``heartbeat`` and ``error`` (a malformed frame gets an error
frame; the connection stays open). Public, like every ``/market`` route.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, Depends, WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from market_service.exchanges import ExchangeError, ExchangeRegistry
from market_service.feed.clients import FeedClient
from market_service.feed.stream import MarketDataStream
from market_service.settings import MarketSettings
from shared.strict_query import StrictQueryRoute, refuse_unknown_query_params

router = APIRouter(route_class=StrictQueryRoute, prefix="/market", tags=["market"])
_SYMBOL = re.compile(r"^[A-Z0-9]{1,15}/[A-Z0-9]{1,10}$")


@router.websocket("/ws", dependencies=[Depends(refuse_unknown_query_params)])
async def market_feed(websocket: WebSocket) -> None:
    """Subscribe to tickers and 1 m candles of symbols."""
    await websocket.accept()
    settings: MarketSettings = websocket.app.state.settings
    stream: MarketDataStream = websocket.app.state.feed
    client = FeedClient(websocket, max_unsent=settings.ws_client_max_unsent)
    stream.connected.add(client)
    tasks = {
        asyncio.create_task(_receive(websocket, client, stream, settings)),
        asyncio.create_task(client.closed.wait()),
    }
    if not client.direct:  # frames go through ASGI: a sender task drains the buffer
        tasks.add(asyncio.create_task(client.run_sender()))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        stream.connected.discard(client)
        for exchange, symbol in list(client.subscriptions):
            with contextlib.suppress(Exception):
                await stream.unsubscribe(symbol, client.id, exchange=exchange)
        await client.close()


async def _receive(
    websocket: WebSocket, client: FeedClient, stream: MarketDataStream, settings: MarketSettings
) -> None:
    registry: ExchangeRegistry = websocket.app.state.exchanges
    while True:
        try:
            text = await websocket.receive_text()
        except (WebSocketDisconnect, RuntimeError):
            return
        except KeyError:  # a binary frame
            client.send_json(_error("frames must be JSON text"))
            continue
        try:
            frame = orjson.loads(text)
        except orjson.JSONDecodeError:
            client.send_json(_error("frame is not valid JSON"))
            continue
        if not isinstance(frame, dict):
            client.send_json(_error("frame must be a JSON object"))
            continue
        op = frame.get("op")
        if op == "ping":
            client.send_json({"type": "pong", "timestamp": datetime.now(UTC).isoformat()})
        elif op in ("subscribe", "unsubscribe"):
            await _subscription(frame, op, client, stream, registry, settings)
        else:
            client.send_json(_error("op must be one of subscribe, unsubscribe, ping"))


async def _subscription(
    frame: dict[str, Any],
    op: str,
    client: FeedClient,
    stream: MarketDataStream,
    registry: ExchangeRegistry,
    settings: MarketSettings,
) -> None:
    symbols = frame.get("symbols")
    exchange_id = frame.get("exchange")
    if (
        not isinstance(symbols, list)
        or not symbols
        or len(symbols) > settings.ws_max_symbols
        or not all(isinstance(s, str) and _SYMBOL.match(s.upper()) for s in symbols)
    ):
        client.send_json(
            _error(
                f"symbols must be a list of 1 to {settings.ws_max_symbols} symbols like BTC/USDT"
            )
        )
        return
    if exchange_id is not None and not isinstance(exchange_id, str):
        client.send_json(_error("exchange must be a string"))
        return
    try:
        exchange = registry.get(exchange_id)
        wanted = list(dict.fromkeys(s.upper() for s in symbols))
        if op == "subscribe":
            for symbol in wanted:
                await exchange.market(symbol)
    except ExchangeError as exc:
        client.send_json(_error(exc.detail))
        return
    # The reply goes first: once subscribed, a tick may be delivered at any moment, and a
    # client must see "subscribed" before the first tick it asked for.
    client.send_json({"type": f"{op}d", "exchange": exchange.id, "symbols": wanted})
    try:
        for symbol in wanted:
            if op == "subscribe":
                await stream.subscribe(symbol, client.id, exchange=exchange.id, client=client)
            else:
                await stream.unsubscribe(symbol, client.id, exchange=exchange.id)
    except RedisError:
        client.send_json(_error(f"{op} failed: the feed is temporarily unavailable; retry"))


def _error(message: str) -> dict[str, str]:
    return {"type": "error", "message": message}
