"""A paper trade on the sim exchange, through the real services (market, user, trading,
notification on uvicorn servers): exactly one stored notification, one WS push to its owner
and none to another user, and one signed webhook call to a local receiver."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import ROUND_UP, Decimal

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from market_service.main import create_app as create_market_app
from market_service.settings import MarketSettings
from notification_service.main import create_app as create_notification_app
from notification_service.webhooks.signing import SIGNATURE_HEADER, verify
from shared.events import NOTIFICATION_QUEUE
from tests.factories import create_user
from tests.notification_service.fakes import WebhookReceiver
from tests.notification_service.live_client import live
from tests.notification_service.settings import make_settings
from tests.notification_service.settled import entries_handled, pushed_so_far, webhooks_settled
from tests.servers import UvicornThread
from tests.waiting import eventually
from trading_engine.main import create_app as create_trading_app
from trading_engine.settings import TradingSettings
from user_service.main import create_app as create_user_app
from user_service.settings import UserSettings

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def platform(service_env: dict[str, str]) -> Iterator[dict[str, str]]:
    """Market (sim), user and trading services on real servers (module-wide: no state)."""
    market = UvicornThread(create_market_app(MarketSettings(log_json=False))).start()
    user = UvicornThread(create_user_app(UserSettings(log_json=False))).start()
    trading = UvicornThread(
        create_trading_app(
            TradingSettings(
                market_service_urls=market.url,
                user_service_urls=user.url,
                run_bots=False,
                log_json=False,
            )
        )
    ).start()
    yield {"market": market.url, "user": user.url, "trading": trading.url}
    for server in (trading, user, market):
        server.stop()


async def test_a_paper_trade_makes_one_notification_one_push_to_its_owner_and_one_signed_webhook(
    platform: dict[str, str], session: AsyncSession, redis: Redis, receiver: WebhookReceiver
) -> None:
    owner = await create_user(session, redis)
    other = await create_user(session, redis)
    settings = make_settings(platform["user"], internal_api_token=UserSettings().internal_api_token)
    async with (
        UvicornThread(create_notification_app(settings)) as notifications,
        httpx.AsyncClient(base_url=notifications.url, timeout=10) as notes,
        httpx.AsyncClient(base_url=platform["trading"], timeout=10) as trading,
    ):
        hook = await notes.post(
            "/notifications/webhooks",
            json={"url": f"{receiver.url}/hooks/trades", "kinds": ["trade.executed"]},
            headers=owner.headers,
        )
        assert hook.status_code == 201, hook.text
        secret = hook.json()["secret"]
        async with httpx.AsyncClient(base_url=platform["market"]) as market:
            book = (await market.get("/market/orderbook", params={"symbol": "BTC/USDT"})).json()
        best_ask, ask_amount = (Decimal(str(x)) for x in book["asks"][0][:2])
        # Above the minimum order value (5 USDT), within the best ask: a single fill.
        quantity = str((Decimal(10) / best_ask).quantize(Decimal("0.0001"), rounding=ROUND_UP))
        assert Decimal(quantity) <= ask_amount, book["asks"][:3]

        async with (
            live(notifications.url, owner.token) as mine,
            live(notifications.url, other.token) as theirs,
        ):
            placed = await trading.post(
                "/trading/orders",
                json={
                    "exchange": "sim",
                    "symbol": "BTC/USDT",
                    "side": "buy",
                    "type": "market",
                    "quantity": quantity,
                    "mode": "paper",
                    "client_order_id": "notify-e2e-1",
                },
                headers=owner.headers,
            )
            assert placed.status_code == 201, placed.text
            assert placed.json()["status"] == "filled"
            trades = (await trading.get("/trading/trades", headers=owner.headers)).json()["items"]
            assert len(trades) == 1

            async def pushed() -> bool:
                return len(mine.notifications) >= 1

            await eventually(pushed)
            await eventually(lambda: _received(receiver, 1))
            # A duplicate (e.g. from the notification request about the fill) would be
            # stored, pushed and posted by the time both entries are handled and a later
            # push has come through.
            await entries_handled(redis, "events:trade.executed", NOTIFICATION_QUEUE)
            listed = (await notes.get("/notifications", headers=owner.headers)).json()
            theirs_listed = (await notes.get("/notifications", headers=other.headers)).json()
            my_pushes = await pushed_so_far(mine, redis, owner.id)
            assert await pushed_so_far(theirs, redis, other.id) == []
        await webhooks_settled(session)

        assert len(my_pushes) == 1
        note = my_pushes[0]
        assert note["kind"] == "trade.executed"
        assert note["data"]["trade_id"] == trades[0]["id"]
        # Stored from whichever of trade.executed / the trading engine's notification request
        # about it came first: one notification either way.
        assert "BTC/USDT" in note["title"]
        assert [n["id"] for n in listed["items"]] == [note["id"]]
        assert theirs_listed["total"] == 0

        assert len(receiver.calls) == 1
        call = receiver.calls[0]
        assert verify(secret, call.body, call.headers[SIGNATURE_HEADER.lower()])
        assert call.json["notification"]["id"] == note["id"]


async def _received(receiver: WebhookReceiver, n: int) -> bool:
    return len(receiver.accepted) >= n
