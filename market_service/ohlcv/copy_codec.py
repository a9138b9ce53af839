"""Candle rows in PostgreSQL's binary COPY format, encoded and decoded with numba.

The history's prices are ``numeric(20,8)``. Asking PostgreSQL for ``numeric::float8`` (or
for text) goes through its text conversion for every value and costs more than the scan;
the binary ``numeric`` is its digits as sent. So ``ohlcv_data`` is read with
``COPY (SELECT "timestamp", open, high, low, close, volume ...) TO STDOUT (FORMAT binary)``
and written with ``COPY ohlcv_data (...) FROM STDIN (FORMAT binary)``, and the rows are
turned into numpy columns (and back) here, in compiled loops that release the GIL (the
market service runs them on a worker thread).

Layout (PostgreSQL docs, "COPY, binary format"): a 19-byte header, then per row an int16
field count and, per field, an int32 length and the value; an int16 -1 ends the data. All
big-endian. ``timestamptz`` is int64 microseconds since 2000-01-01 UTC; ``numeric`` is
int16 ndigits, int16 weight, uint16 sign, int16 dscale, then ndigits base-10 000 digits:
``value = sum(digit[i] * 10000 ** (weight - i))``.

Decoding a value with at most 16 significant decimal digits is exact to the float that
``float(Decimal(text))`` gives (an integer below 2**53 divided by an exact power of ten);
encoding keeps 15 significant digits and at most the column's 8 decimals, as PostgreSQL's
own ``float8::numeric`` does.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
TRAILER = b"\xff\xff"
PG_EPOCH_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
SCALE = 8  # numeric(20, 8)
MAX_ABS = 1e12  # numeric(20, 8) holds less

_NUMERIC_POS, _NUMERIC_NEG, _NUMERIC_NAN = 0x0000, 0x4000, 0xC000
_POW10000 = np.array([1.0, 1e4, 1e8, 1e12, 1e16, 1e20, 1e24])  # exact up to 1e20


class CopyFormatError(ValueError):
    """The COPY data is not the candle layout this module reads."""


Columns = tuple[
    npt.NDArray[np.int64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]


@njit(cache=True, nogil=True)
def _u16(buf: npt.NDArray[np.uint8], pos: int) -> int:
    return int((np.int64(buf[pos]) << 8) | np.int64(buf[pos + 1]))


@njit(cache=True, nogil=True)
def _i16(buf: npt.NDArray[np.uint8], pos: int) -> int:
    value = _u16(buf, pos)
    return value - 65536 if value >= 32768 else value


@njit(cache=True, nogil=True)
def _i32(buf: npt.NDArray[np.uint8], pos: int) -> int:
    value = (_u16(buf, pos) << 16) | _u16(buf, pos + 2)
    return value - 4294967296 if value >= 2147483648 else value


@njit(cache=True, nogil=True)
def _i64(buf: npt.NDArray[np.uint8], pos: int) -> int:
    value = np.int64(0)
    for k in range(8):
        value = (value << 8) | np.int64(buf[pos + k])
    return int(value)


@njit(cache=True, nogil=True)
def _count_rows(buf: npt.NDArray[np.uint8]) -> int:
    """Rows in the data (-1 when a row is cut short or a field is not 6 wide)."""
    pos = 19
    rows = 0
    end = buf.shape[0]
    while pos + 2 <= end:
        fields = _i16(buf, pos)
        pos += 2
        if fields == -1:
            return rows
        if fields != 6:
            return -1
        for _ in range(6):
            if pos + 4 > end:
                return -1
            length = _i32(buf, pos)
            pos += 4
            if length < 0 or pos + length > end:
                return -1
            pos += length
        rows += 1
    return -1


@njit(cache=True, nogil=True)
def _decode(
    buf: npt.NDArray[np.uint8],
    pow10000: npt.NDArray[np.float64],
    timestamp: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
) -> None:
    pos = 19
    for row in range(timestamp.shape[0]):
        pos += 2 + 4  # field count, timestamp length (both checked by _count_rows)
        timestamp[row] = _i64(buf, pos) // 1000 + PG_EPOCH_MS
        pos += 8
        for col in range(5):
            length = _i32(buf, pos)
            pos += 4
            ndigits = _i16(buf, pos)
            weight = _i16(buf, pos + 2)
            sign = _u16(buf, pos + 4)
            digits = pos + 8
            if sign == _NUMERIC_NAN:
                value = np.nan
            elif ndigits <= 4:
                mantissa = np.int64(0)
                for k in range(ndigits):
                    mantissa = mantissa * 10000 + _u16(buf, digits + 2 * k)
                exponent = weight - ndigits + 1
                if exponent < 0:
                    value = float(mantissa) / pow10000[-exponent]
                else:
                    value = float(mantissa) * pow10000[exponent]
            else:
                value = 0.0
                for k in range(ndigits):
                    value += _u16(buf, digits + 2 * k) * 10000.0 ** (weight - k)
            values[row, col] = -value if sign == _NUMERIC_NEG else value
            pos += length


def decode_rows(data: bytes) -> Columns:
    """``(timestamp_ms, open, high, low, close, volume)`` from binary COPY output of
    ``"timestamp", open, high, low, close, volume``."""
    buf = np.frombuffer(data, dtype=np.uint8)
    if bytes(buf[:11]) != HEADER[:11]:
        raise CopyFormatError("not PostgreSQL binary COPY data")
    n = _count_rows(buf)
    if n < 0:
        raise CopyFormatError("COPY data cut short or not six columns a row")
    timestamp = np.empty(n, dtype=np.int64)
    values = np.empty((n, 5), dtype=np.float64)
    _decode(buf, _POW10000, timestamp, values)
    return (
        timestamp,
        np.ascontiguousarray(values[:, 0]),
        np.ascontiguousarray(values[:, 1]),
        np.ascontiguousarray(values[:, 2]),
        np.ascontiguousarray(values[:, 3]),
        np.ascontiguousarray(values[:, 4]),
    )


@njit(cache=True, nogil=True)
def _put16(out: npt.NDArray[np.uint8], pos: int, value: int) -> int:
    out[pos] = (value >> 8) & 0xFF
    out[pos + 1] = value & 0xFF
    return pos + 2


@njit(cache=True, nogil=True)
def _put32(out: npt.NDArray[np.uint8], pos: int, value: int) -> int:
    pos = _put16(out, pos, (value >> 16) & 0xFFFF)
    return _put16(out, pos, value & 0xFFFF)


@njit(cache=True, nogil=True)
def _encode(
    prefix: npt.NDArray[np.uint8],
    timestamp: npt.NDArray[np.int64],
    values: npt.NDArray[np.float64],
    out: npt.NDArray[np.uint8],
) -> int:
    pos = 0
    digits = np.empty(8, dtype=np.int64)
    for row in range(timestamp.shape[0]):
        for k in range(prefix.shape[0]):
            out[pos + k] = prefix[k]
        pos += prefix.shape[0]
        pos = _put32(out, pos, 8)
        micros = (timestamp[row] - PG_EPOCH_MS) * 1000
        for k in range(8):
            out[pos + k] = (micros >> (56 - 8 * k)) & 0xFF
        pos += 8
        for col in range(values.shape[1]):
            value = values[row, col]
            # At most 15 significant digits (DBL_DIG, as PostgreSQL's float8 -> numeric):
            # the digits a float holds for sure, none of its binary noise.
            whole = np.int64(abs(value))
            int_digits = 0
            while whole > 0:
                whole //= 10
                int_digits += 1
            decimals = min(SCALE, 15 - int_digits)
            # value = mantissa * 10**-decimals; as base-10 000 digits at unit
            # 10000**(shift - 2): pad to a whole digit, drop the zero digits below it.
            shift, pad = divmod(SCALE - decimals, 4)
            scaled = np.int64(np.rint(abs(value) * 10.0**decimals)) * np.int64(10**pad)
            n = 0
            while scaled > 0:
                digits[n] = scaled % 10000
                scaled //= 10000
                n += 1
            # digits[0] is the least significant; weight of the most significant one:
            weight = n - 1 + shift - 2
            low = 0
            while low < n and digits[low] == 0:  # trailing zero digits are not sent
                low += 1
            ndigits = n - low
            pos = _put32(out, pos, 8 + 2 * ndigits)
            pos = _put16(out, pos, ndigits)
            pos = _put16(out, pos, (weight if ndigits else 0) & 0xFFFF)
            pos = _put16(out, pos, _NUMERIC_NEG if value < 0 and ndigits else _NUMERIC_POS)
            pos = _put16(out, pos, SCALE)
            for k in range(n - 1, low - 1, -1):
                pos = _put16(out, pos, digits[k])
    return pos


def encode_rows(key: tuple[str, ...], columns: Columns) -> bytes:
    """Binary COPY input for ``(*key columns, "timestamp", open, high, low, close,
    volume)``: the same text ``key`` values (exchange, symbol, timeframe) on every row."""
    timestamp, *prices = columns
    values = np.column_stack(prices).astype(np.float64) if len(timestamp) else np.empty((0, 5))
    if not np.isfinite(values).all() or (np.abs(values) >= MAX_ABS).any():
        raise ValueError("candle values must be finite and below 1e12 to store as numeric(20,8)")
    prefix = bytearray((len(key) + 6).to_bytes(2, "big"))
    for text in key:
        raw = text.encode()
        prefix += len(raw).to_bytes(4, "big", signed=True) + raw
    prefix_array = np.frombuffer(bytes(prefix), dtype=np.uint8)
    # Worst case a row: prefix, the timestamp (4 + 8), five numerics of up to 8 digits.
    row_max = len(prefix) + 12 + 5 * (4 + 8 + 2 * 8)
    out = np.empty(len(HEADER) + row_max * len(timestamp) + len(TRAILER), dtype=np.uint8)
    out[: len(HEADER)] = np.frombuffer(HEADER, dtype=np.uint8)
    used = _encode(
        prefix_array,
        np.ascontiguousarray(timestamp, dtype=np.int64),
        values,
        out[len(HEADER) :],
    )
    end = len(HEADER) + used
    out[end : end + 2] = np.frombuffer(TRAILER, dtype=np.uint8)
    return out[: end + 2].tobytes()
