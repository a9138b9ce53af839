"""The writes of a batch of bots' candle (:func:`~trading_engine.bots.batch.apply_candles`)
as a few set-based statements instead of the ORM's unit of work.

The ledger and the adapter keep building ORM objects (new orders, fills, positions,
outbox entries; balances, positions and bot rows changed in place). Before the commit
:func:`write_batch` writes them per table in ONE statement over arrays
(``INSERT ... SELECT FROM unnest(...)``, ``UPDATE ... FROM unnest(...)``: fixed SQL, so
one prepared statement each, the arrays encoded by asyncpg), then takes them off the
session's books (expunged; outbox entries back in as persistent, which their publishing
after the commit checks), so the commit's flush has nothing left to do. Nothing reads
these objects in the session afterwards. The ORM's flush of ~900 rows for
100 orders was most of a burst's time (Python work per row and attribute).

Anything else the transaction changed (another table, a column not listed here) is left
to the ORM's flush as before, so nothing is ever lost by being unknown here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import orjson
from sqlalchemy import Table, TextClause, inspect, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.types import JSON

from shared.events import OutboxEntry
from trading_engine.models import Balance, Bot, Order, Position, Trade

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class _Rows:
    """One table's rows written from ORM objects: which columns, and how."""

    model: type[Any]
    columns: tuple[str, ...]
    returning: str | None = None  # a server-made key read back (outbox entries' seq)

    @property
    def table(self) -> Table:
        table = self.model.__table__
        assert isinstance(table, Table)  # noqa: S101 - every model maps a table
        return table

    @cached_property
    def _json(self) -> frozenset[str]:
        return frozenset(c for c in self.columns if isinstance(self.table.c[c].type, JSON))

    def _arrays(self, columns: tuple[str, ...] | None = None) -> str:
        return ", ".join(
            f"CAST(:{c} AS {self.table.c[c].type.compile(dialect=_DIALECT)}[])"
            for c in columns or self.columns
        )

    @cached_property
    def insert(self) -> TextClause:
        names = ", ".join(f'"{c}"' for c in self.columns)
        sql = (
            # Identifiers from the models; every value is a bound array.
            f'INSERT INTO "{self.table.name}" ({names}) SELECT {names} '  # noqa: S608
            f"FROM unnest({self._arrays()}) WITH ORDINALITY AS v({names}, n) ORDER BY v.n"
        )
        if self.returning is not None:
            sql += f' RETURNING "{self.returning}"'
        return text(sql)

    def update(self, columns: tuple[str, ...]) -> TextClause:
        """``UPDATE`` of these columns (the key first): only what the rows' objects
        changed, as the ORM's flush would (a live order's own transactions change a
        bot's position beside this one's)."""
        statement = self._updates.get(columns)
        if statement is None:
            key, *values = columns
            sets = ", ".join(f'"{c}" = v."{c}"' for c in values)
            names = ", ".join(f'"{c}"' for c in columns)
            statement = self._updates[columns] = text(
                f'UPDATE "{self.table.name}" AS t SET {sets} '  # noqa: S608
                f"FROM unnest({self._arrays(columns)}) AS v({names}) "
                f'WHERE t."{key}" = v."{key}"'
            )
        return statement

    @cached_property
    def _updates(self) -> dict[tuple[str, ...], TextClause]:
        return {}

    def params(
        self, objects: Sequence[Any], columns: tuple[str, ...] | None = None
    ) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for column in columns or self.columns:
            values = [obj.__dict__.get(column) for obj in objects]
            if column in self._json:
                values = [None if v is None else _json(v) for v in values]
            out[column] = values
        return out


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# New rows, parents first (a trade references its order). Columns the code may leave
# unset are nullable; server defaults not written here are read by nobody afterwards.
_INSERTS = (
    _Rows(
        Order,
        (
            "id",
            "user_id",
            "bot_id",
            "client_order_id",
            "exchange_order_id",
            "exchange",
            "symbol",
            "side",
            "type",
            "mode",
            "quantity",
            "price",
            "status",
            "filled_quantity",
            "average_price",
            "fee",
            "fee_currency",
            "fee_rate",
            "reason",
            "created_at",
            "updated_at",
        ),
    ),
    _Rows(
        Position,
        (
            "id",
            "user_id",
            "bot_id",
            "exchange",
            "symbol",
            "mode",
            "quantity",
            "average_entry_price",
            "realized_pnl",
            "fees",
            "highest_price",
            "cost_basis",
            "status",
            "opened_at",
            "updated_at",
            "closed_at",
        ),
    ),
    _Rows(
        Trade,
        (
            "id",
            "user_id",
            "symbol",
            "side",
            "price",
            "quantity",
            "timestamp",
            "strategy_name",
            "pnl",
            "order_id",
            "bot_id",
            "exchange",
            "mode",
            "fee",
            "fee_currency",
            "liquidity",
        ),
    ),
    _Rows(OutboxEntry, ("stream", "fields"), returning="seq"),
)
# Rows changed in place: the key, then the columns that may change (those changed are
# written).
_UPDATES = (
    _Rows(Balance, ("id", "free", "locked")),
    _Rows(
        Position,
        (
            "id",
            "quantity",
            "average_entry_price",
            "realized_pnl",
            "fees",
            "highest_price",
            "cost_basis",
            "status",
            "updated_at",
            "closed_at",
        ),
    ),
    _Rows(Bot, ("id", "status", "last_candle_at", "last_signal", "error", "updated_at")),
)


async def write_batch(session: AsyncSession) -> None:
    """Write the session's new and changed rows of the tables above, one statement per
    table, and take them off the session's books (the commit's flush then skips them)."""
    with session.no_autoflush:
        new: dict[type[Any], list[Any]] = {}
        for obj in session.new:
            new.setdefault(type(obj), []).append(obj)
        changed: dict[type[Any], list[Any]] = {}
        for obj in session.dirty:
            changed.setdefault(type(obj), []).append(obj)
        inserts = [(rows, new.pop(rows.model, [])) for rows in _INSERTS]
        # Changed rows grouped by the columns they changed (the key first).
        updates: list[tuple[_Rows, tuple[str, ...], list[Any]]] = []
        for rows in _UPDATES:
            groups: dict[tuple[str, ...], list[Any]] = {}
            for obj in changed.pop(rows.model, []):
                keys = inspect(obj).committed_state.keys()
                if keys <= set(rows.columns):
                    columns = (rows.columns[0], *(c for c in rows.columns[1:] if c in keys))
                    groups.setdefault(columns, []).append(obj)
                else:  # something this module does not write: the ORM's
                    changed.setdefault(rows.model, []).append(obj)
            updates.extend((rows, columns, objects) for columns, objects in groups.items())
        entries: list[Any] = []
        for rows, objects in inserts:
            if objects:
                result = await session.execute(rows.insert, rows.params(objects))
                if rows.returning is not None:
                    # Keys are drawn in the ORDER BY of the insert: ascending, in order.
                    for obj, key in zip(objects, sorted(result.scalars()), strict=True):
                        setattr(obj, rows.returning, key)
                    entries = objects
        for rows, columns, objects in updates:
            if len(columns) > 1:
                await session.execute(rows.update(columns), rows.params(objects, columns))
        if not new and not changed:
            # Nothing else to flush (the usual case): off the books in one go.
            session.expunge_all()
        else:  # the rest is the ORM's to write
            for _, objects in inserts:
                for obj in objects:
                    session.expunge(obj)
            for _, _, objects in updates:
                for obj in objects:
                    for key in list(inspect(obj).committed_state):
                        set_committed_value(obj, key, obj.__dict__[key])
        # Outbox entries are published after the commit only if persistent: back in,
        # with nothing left to write.
        for obj in entries:
            make_transient_to_detached(obj)
        session.add_all(entries)
