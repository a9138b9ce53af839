"""Candles on the wire as an Arrow IPC stream (``GET /market/ohlcv/bulk``).

Six columns, ``timestamp`` (int64 epoch ms, UTC) and ``open high low close volume``
(float64), in record batches: the sender sends each batch as soon as it has it, the
receiver gets numpy columns without parsing a number (docs/api.md, market service).
A stream without its end-of-stream marker was cut off and is refused.

A record batch is also how the market service stores a sealed week of history
(``ohlcv_blocks.batch``): the stored message goes into a stream as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from shared.candles import Candles

__all__ = [
    "CANDLE_SCHEMA",
    "MEDIA_TYPE",
    "CandleStreamError",
    "batch_columns",
    "read_candles",
    "stream_batch",
    "stream_end",
    "stream_header",
]

MEDIA_TYPE = "application/vnd.apache.arrow.stream"
CANDLE_SCHEMA = pa.schema(
    [
        ("timestamp", pa.int64()),
        ("open", pa.float64()),
        ("high", pa.float64()),
        ("low", pa.float64()),
        ("close", pa.float64()),
        ("volume", pa.float64()),
    ]
)
EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # Arrow's end-of-stream marker


class CandleStreamError(ValueError):
    """The bytes are not a whole candle stream."""


def stream_header() -> bytes:
    """The first bytes of a stream (its schema)."""
    return bytes(CANDLE_SCHEMA.serialize().to_pybytes())


def stream_batch(columns: Sequence[np.ndarray]) -> bytes:
    """One record batch of a stream: ``timestamp, open, high, low, close, volume``."""
    batch = pa.record_batch(list(columns), schema=CANDLE_SCHEMA)
    return bytes(batch.serialize().to_pybytes())


def batch_columns(message: bytes) -> tuple[np.ndarray, ...]:
    """The six columns of one record-batch message made by :func:`stream_batch`."""
    batch = pa.ipc.read_record_batch(pa.py_buffer(message), CANDLE_SCHEMA)
    return tuple(column.to_numpy() for column in batch.columns)


def stream_end() -> bytes:
    """The last bytes of a stream."""
    return EOS


def read_candles(data: bytes) -> Candles:
    """The candles of a whole stream, oldest first."""
    if not data.endswith(EOS):
        raise CandleStreamError("the candle stream ended early (no end-of-stream marker)")
    try:
        table = pa.ipc.open_stream(data).read_all()
    except pa.ArrowInvalid as exc:
        raise CandleStreamError(f"not a candle stream: {exc}") from exc
    if not table.schema.equals(CANDLE_SCHEMA):
        raise CandleStreamError(f"unexpected candle columns: {table.schema.names}")
    prices = [
        np.ascontiguousarray(table.column(name).to_numpy(), dtype=np.float64)
        for name in CANDLE_SCHEMA.names[1:]
    ]
    timestamp = np.ascontiguousarray(table.column("timestamp").to_numpy(), dtype=np.int64)
    return Candles(timestamp, *prices)
