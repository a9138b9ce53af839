"""Candle transactions in flight, and the idle signal the HOLD writes wait on."""

from __future__ import annotations

import asyncio

from trading_engine.bots.slots import BookingSlots


async def test_waiting_for_idle_returns_when_the_last_transaction_in_flight_ends() -> None:
    slots = BookingSlots(2)

    async with slots.hold():
        async with slots.hold():
            waiter = asyncio.create_task(slots.wait_idle())
            await asyncio.sleep(0)  # one loop turn: the waiter reaches the idle signal
            assert slots.in_flight == 2
        await asyncio.sleep(0)
        assert not waiter.done()  # one transaction is still in flight

    await asyncio.wait_for(waiter, timeout=5)
    assert slots.in_flight == 0


async def test_waiting_for_idle_returns_at_once_when_nothing_is_in_flight() -> None:
    slots = BookingSlots(1)

    await asyncio.wait_for(slots.wait_idle(), timeout=5)
