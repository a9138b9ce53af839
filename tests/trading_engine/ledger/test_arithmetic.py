"""Position and PnL arithmetic: average entry, realised and unrealised PnL, fees, exactly."""

from __future__ import annotations

from decimal import Decimal as D

from trading_engine.brokers.paper import quantity_for_budget, walk_book
from trading_engine.ledger.arithmetic import PositionState, apply_buy, apply_sell
from trading_engine.market_client import OrderBook


def test_buys_average_the_entry_and_carry_their_fees_in_the_cost_basis() -> None:
    state = apply_buy(PositionState(), D(1), D(100), D("0.1"))
    state = apply_buy(state, D(3), D(120), D("0.36"))
    assert state.quantity == D(4)
    assert state.average_entry_price == D(115)
    assert state.cost_basis == D("460.46")
    assert state.fees == D("0.46")
    assert state.unrealized_pnl(D(130)) == D("59.54")


def test_partial_sells_realise_pnl_against_their_share_of_the_cost() -> None:
    state = apply_buy(PositionState(), D(3), D("100.12345678"), D("0.30037037"))
    state, first = apply_sell(state, D(1), D(110), D("0.11"))
    state, second = apply_sell(state, D(2), D(90), D("0.18"))
    assert state.quantity == 0
    assert state.cost_basis == 0
    total_in = D(3) * D("100.12345678") + D("0.30037037")
    total_out = D(110) - D("0.11") + D(180) - D("0.18")
    assert first + second == total_out - total_in  # to the last satoshi
    assert state.realized_pnl == first + second
    assert state.fees == D("0.30037037") + D("0.11") + D("0.18")


def test_a_market_order_walks_the_levels_best_first() -> None:
    fills = walk_book(
        [(D(100), D("0.5")), (D(101), D(1)), (D(105), D(9))],
        D(2),
        fee_rate=D("0.001"),
        fee_currency="USDT",
        buying=True,
    )
    assert [(f.price, f.quantity) for f in fills] == [
        (D(100), D("0.5")),
        (D(101), D(1)),
        (D(105), D("0.5")),
    ]
    assert [f.fee for f in fills] == [D("0.05"), D("0.101"), D("0.0525")]


def test_a_limit_walk_stops_at_the_limit_price() -> None:
    fills = walk_book(
        [(D(100), D(1)), (D(101), D(1))],
        D(3),
        fee_rate=D(0),
        fee_currency="USDT",
        buying=True,
        limit_price=D(100),
        partial=True,
    )
    assert sum(f.quantity for f in fills) == D(1)


def test_the_budget_quantity_never_costs_more_than_the_budget() -> None:
    book = OrderBook("sim", "BTC/USDT", [], [(D("100.37"), D("0.3")), (D("101.11"), D(50))])
    quantity = quantity_for_budget(book, D(1000), D("0.001"), D("0.000001"))
    fills = walk_book(book.asks, quantity, fee_rate=D("0.001"), fee_currency="USDT", buying=True)
    cost = sum(f.price * f.quantity + f.fee for f in fills)
    assert cost <= D(1000)
    assert D(1000) - cost < D("0.0002")  # and leaves at most a step's worth unspent
