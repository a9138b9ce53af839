"""A local server answering like Binance's spot REST API, for ccxt's real ``binance``
class: exchangeInfo, ticker, account, and POST/GET/DELETE /api/v3/order with scripted
partial fills, filter failures and insufficient balance."""

from __future__ import annotations

import itertools
import time
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

MIN_QTY = Decimal("0.001")
MIN_NOTIONAL = Decimal("10")


class BinanceStub:
    def __init__(self) -> None:
        self.reset()
        self.app = self._build()

    def reset(self) -> None:
        self.price = Decimal("100")
        self.orders: dict[int, dict[str, Any]] = {}
        self.by_client: dict[str, int] = {}
        self.posts = 0
        self.gets = 0
        # Cumulative executed quantity as fractions of the order: one step on POST, then
        # one per GET (e.g. [0.4, 1.0] is a partial fill, then the rest).
        self.fill_plan: list[Decimal] = [Decimal(1)]
        self.fail_post_with: tuple[int, dict[str, Any]] | None = None
        self.api_keys: set[str] = set()
        self._ids = itertools.count(1000)

    def _order_json(self, order: dict[str, Any]) -> dict[str, Any]:
        executed: Decimal = order["executed"]
        status = "NEW" if executed == 0 else "PARTIALLY_FILLED"
        if executed >= order["qty"]:
            status = "FILLED"
        if order.get("canceled"):
            status = "CANCELED"
        return {
            "symbol": order["symbol"],
            "orderId": order["id"],
            "orderListId": -1,
            "clientOrderId": order["client_id"],
            "price": str(order["price"] or "0.00000000"),
            "origQty": str(order["qty"]),
            "executedQty": str(executed),
            "cummulativeQuoteQty": str(executed * order.get("fill_price", self.price)),
            "status": status,
            "timeInForce": "GTC",
            "type": order["type"],
            "side": order["side"],
            "stopPrice": str(order.get("stop_price") or "0.00000000"),
            "icebergQty": "0.00000000",
            "time": order["time"],
            "updateTime": int(time.time() * 1000),
            "isWorking": True,
            "workingTime": order["time"],
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "NONE",
        }

    def _build(self) -> FastAPI:
        app = FastAPI()

        async def params(request: Request) -> dict[str, str]:
            values = dict(request.query_params)
            body = (await request.body()).decode()
            values.update(dict(parse_qsl(body)))
            return values

        def error(status: int, code: int, msg: str) -> JSONResponse:
            return JSONResponse({"code": code, "msg": msg}, status_code=status)

        @app.get("/api/v3/exchangeInfo")
        async def exchange_info() -> dict[str, Any]:
            return {
                "timezone": "UTC",
                "serverTime": int(time.time() * 1000),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [
                    {
                        "symbol": "BTCUSDT",
                        "status": "TRADING",
                        "baseAsset": "BTC",
                        "baseAssetPrecision": 8,
                        "quoteAsset": "USDT",
                        "quotePrecision": 8,
                        "quoteAssetPrecision": 8,
                        "baseCommissionPrecision": 8,
                        "quoteCommissionPrecision": 8,
                        "orderTypes": ["LIMIT", "MARKET", "STOP_LOSS", "TAKE_PROFIT"],
                        "icebergAllowed": True,
                        "ocoAllowed": True,
                        "isSpotTradingAllowed": True,
                        "isMarginTradingAllowed": False,
                        "filters": [
                            {
                                "filterType": "PRICE_FILTER",
                                "minPrice": "0.01",
                                "maxPrice": "1000000.00",
                                "tickSize": "0.01",
                            },
                            {
                                "filterType": "LOT_SIZE",
                                "minQty": str(MIN_QTY),
                                "maxQty": "9000.00000000",
                                "stepSize": "0.00100000",
                            },
                            {
                                "filterType": "NOTIONAL",
                                "minNotional": str(MIN_NOTIONAL),
                                "applyMinToMarket": True,
                                "maxNotional": "9000000.00",
                                "applyMaxToMarket": False,
                                "avgPriceMins": 5,
                            },
                        ],
                        "permissions": ["SPOT"],
                        "permissionSets": [["SPOT"]],
                        "defaultSelfTradePreventionMode": "NONE",
                        "allowedSelfTradePreventionModes": ["NONE"],
                    }
                ],
            }

        @app.get("/api/v3/ticker/24hr")
        async def ticker(symbol: str) -> dict[str, Any]:
            p = str(self.price)
            return {
                "symbol": symbol,
                "priceChange": "0",
                "priceChangePercent": "0",
                "weightedAvgPrice": p,
                "prevClosePrice": p,
                "lastPrice": p,
                "lastQty": "1",
                "bidPrice": p,
                "bidQty": "10",
                "askPrice": p,
                "askQty": "10",
                "openPrice": p,
                "highPrice": p,
                "lowPrice": p,
                "volume": "100",
                "quoteVolume": "10000",
                "openTime": 0,
                "closeTime": int(time.time() * 1000),
                "firstId": 1,
                "lastId": 2,
                "count": 2,
            }

        @app.get("/api/v3/account")
        async def account(request: Request) -> Any:
            if request.headers.get("x-mbx-apikey") not in self.api_keys:
                return error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            return {
                "makerCommission": 10,
                "takerCommission": 10,
                "buyerCommission": 0,
                "sellerCommission": 0,
                "canTrade": True,
                "canWithdraw": True,
                "canDeposit": True,
                "updateTime": 0,
                "accountType": "SPOT",
                "balances": [{"asset": "USDT", "free": "1000.0", "locked": "0.0"}],
                "permissions": ["SPOT"],
            }

        @app.post("/api/v3/order")
        async def create(request: Request) -> Any:
            self.posts += 1
            if request.headers.get("x-mbx-apikey") not in self.api_keys:
                return error(401, -2015, "Invalid API-key, IP, or permissions for action.")
            if self.fail_post_with is not None:
                status, body = self.fail_post_with
                return JSONResponse(body, status_code=status)
            p = await params(request)
            qty = Decimal(p["quantity"])
            if qty < MIN_QTY:
                return error(400, -1013, "Filter failure: LOT_SIZE")
            order = {
                "id": next(self._ids),
                "client_id": p.get("newClientOrderId", ""),
                "symbol": p["symbol"],
                "side": p["side"],
                "type": p["type"],
                "qty": qty,
                "price": p.get("price"),
                "executed": qty * self.fill_plan[0],
                "step": 0,
                "time": int(time.time() * 1000),
            }
            if p["type"] == "STOP_LOSS":
                order["stop_price"], order["executed"] = Decimal(p["stopPrice"]), Decimal(0)
            self.orders[order["id"]] = order
            self.by_client[order["client_id"]] = order["id"]
            body = self._order_json(order)
            body["transactTime"] = order["time"]
            body["fills"] = (
                [
                    {
                        "price": str(self.price),
                        "qty": str(order["executed"]),
                        "commission": str(order["executed"] * self.price * Decimal("0.001")),
                        "commissionAsset": "USDT",
                        "tradeId": 1,
                    }
                ]
                if order["executed"] > 0
                else []
            )
            return body

        def find(p: dict[str, str]) -> dict[str, Any] | None:
            if "orderId" in p:
                return self.orders.get(int(p["orderId"]))
            order_id = self.by_client.get(p.get("origClientOrderId", ""))
            return None if order_id is None else self.orders[order_id]

        @app.get("/api/v3/order")
        async def read(request: Request) -> Any:
            self.gets += 1
            order = find(await params(request))
            if order is None:
                return error(400, -2013, "Order does not exist.")
            if order.get("stop_price") is not None:
                if not order.get("canceled") and self.price <= order["stop_price"]:
                    order["executed"], order["fill_price"] = order["qty"], self.price
            elif not order.get("canceled") and order["step"] + 1 < len(self.fill_plan):
                order["step"] += 1
                order["executed"] = order["qty"] * self.fill_plan[order["step"]]
            return self._order_json(order)

        @app.delete("/api/v3/order")
        async def cancel(request: Request) -> Any:
            order = find(await params(request))
            if order is None:
                return error(400, -2011, "Unknown order sent.")
            order["canceled"] = True
            return self._order_json(order)

        return app
