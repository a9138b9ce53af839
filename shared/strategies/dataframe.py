"""DataFrame strategies: freqtrade's strategy shape on this platform's engine
(docs/trading.md, DataFrame strategies).

A subclass of :class:`DataFrameStrategy` fills a pandas DataFrame of candles (columns
``date`` (UTC), ``open``, ``high``, ``low``, ``close``, ``volume``) in three steps, as in
freqtrade: :meth:`~DataFrameStrategy.populate_indicators` adds indicator columns,
:meth:`~DataFrameStrategy.populate_entry_trend` sets ``enter_long`` to 1 where it wants
in, :meth:`~DataFrameStrategy.populate_exit_trend` sets ``exit_long`` to 1 where it wants
out. The frame is built once for all the candles it is given, so a backtest computes it
once, vectorised, and a bot on its window; both read the action of each candle from the
same columns (an exit wins over an entry on one candle).

Porting a freqtrade strategy takes changing its imports (``freqtrade.strategy`` → this
module, ``freqtrade.vendor.qtpylib.indicators`` → :mod:`shared.strategies.frame_indicators`)
and its base class (``IStrategy`` → ``DataFrameStrategy``). What it declares is read as
freqtrade reads it:

- ``stoploss = -0.10`` → a 10 % stop loss; ``trailing_stop = True`` → a trailing stop
  the same distance below the highest price; ``minimal_roi = {"0": 0.05}`` → a 5 % take
  profit (one step only: this engine has no time-based ROI);
- ``startup_candle_count`` → the warm-up: no signal before that many candles;
- parameters (:mod:`shared.strategies.parameters`) → the strategy's parameter schema;
- ``@informative("4h")`` on ``populate_indicators_4h`` → its columns joined as
  ``{column}_4h``, each candle seeing the last 4-hour candle **closed** by its own close;
  ``self.dp.get_pair_dataframe(pair, "4h")`` with :func:`merge_informative_pair` does the
  same by hand;
- ``timeframe`` → the timeframe the strategy was written for (shown in the catalog); a
  bot or backtest runs it on its own, and during a run ``self.timeframe`` is that one.

What the engine cannot do is refused when the class is defined, with the reason
(shorts, callbacks such as ``custom_stoploss``, multi-step ROI tables, offset trailing
stops): a strategy never runs with rules silently dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, create_model

from shared.candles import Candles, HigherCandles
from shared.resample import check_higher, higher_candles, spacing_ms
from shared.strategies.base import (
    ENTER_LONG,
    EXIT_LONG,
    SignalArray,
    TradingStrategy,
)
from shared.strategies.parameters import (
    BooleanParameter,
    CategoricalParameter,
    DecimalParameter,
    IntParameter,
    Parameter,
    RealParameter,
)
from shared.timeframes import TIMEFRAME_MS

__all__ = [
    "BooleanParameter",
    "CategoricalParameter",
    "DataFrameStrategy",
    "DataFrameStrategyError",
    "DecimalParameter",
    "IntParameter",
    "RealParameter",
    "informative",
    "merge_informative_pair",
]

Method = TypeVar("Method", bound=Callable[..., Any])

# freqtrade features this engine does not run: a strategy defining one is refused.
UNSUPPORTED_METHODS = (
    "custom_stoploss",
    "custom_exit",
    "custom_sell",
    "custom_entry_price",
    "custom_exit_price",
    "custom_stake_amount",
    "confirm_trade_entry",
    "confirm_trade_exit",
    "adjust_trade_position",
    "leverage",
    "order_filled",
)
UNSUPPORTED_FLAGS = (
    "can_short",
    "use_custom_stoploss",
    "exit_profit_only",
    "sell_profit_only",
    "ignore_roi_if_entry_signal",
    "trailing_only_offset_is_reached",
    "position_adjustment_enable",
)


class DataFrameStrategyError(ValueError):
    """A DataFrame strategy that broke the contract (its message names the step)."""


@dataclass(frozen=True)
class _Informative:
    timeframe: str
    fmt: str | Callable[..., str] | None
    ffill: bool


def informative(
    timeframe: str,
    asset: str = "",
    fmt: str | Callable[..., str] | None = None,
    *,
    candle_type: Any = None,
    ffill: bool = True,
) -> Callable[[Method], Method]:
    """Mark ``populate_indicators_<tf>(self, dataframe, metadata)`` as computing
    indicators on ``timeframe``'s candles of the same market; its columns are joined to
    the trading frame as ``{column}_{timeframe}`` (or ``fmt``), from the candle on which
    that higher candle has closed. Other assets are not available (``asset`` must be
    empty)."""
    if asset:
        raise TypeError(
            f"@informative({timeframe!r}, {asset!r}): only the traded market's own higher "
            "timeframes are available, not another asset"
        )
    if timeframe not in TIMEFRAME_MS:
        raise TypeError(f"@informative: unknown timeframe {timeframe!r}")

    def mark(method: Method) -> Method:
        marks = [*getattr(method, "_informative", ()), _Informative(timeframe, fmt, ffill)]
        method._informative = marks  # type: ignore[attr-defined]
        return method

    return mark


def _timeframe_name(ms: int) -> str:
    return next((name for name, value in TIMEFRAME_MS.items() if value == ms), f"{ms // 1000}s")


def candle_frame(candles: Candles) -> pd.DataFrame:
    """Candles as freqtrade's DataFrame: ``date`` (UTC) and the five prices."""
    return pd.DataFrame(
        {
            "date": pd.to_datetime(candles.timestamp, unit="ms", utc=True),
            "open": candles.open,
            "high": candles.high,
            "low": candles.low,
            "close": candles.close,
            "volume": candles.volume,
        }
    )


def _epoch_ms(dates: pd.Series) -> np.ndarray:
    return np.asarray(dates.dt.as_unit("ms").astype("int64"), dtype=np.int64)


def _join(
    dataframe: pd.DataFrame,
    informative_frame: pd.DataFrame,
    visible: np.ndarray,
    names: Mapping[str, str],
    ffill: bool,
) -> pd.DataFrame:
    """Each row of ``dataframe`` gets the columns of the last visible informative row."""
    seen = visible > 0
    if not ffill:  # only on the candle where a new higher candle became visible
        seen &= np.r_[True, visible[1:] != visible[:-1]]
    # Row -1 does not exist: reindexing leaves those rows undefined (NaN / NaT).
    rows = informative_frame.reset_index(drop=True).reindex(np.where(seen, visible - 1, -1))
    rows = rows.rename(columns=dict(names))
    rows.index = dataframe.index
    return pd.concat([dataframe, rows], axis=1)


def _column_names(
    columns: list[str], timeframe: str, fmt: str | Callable[..., str] | None
) -> dict[str, str]:
    names: dict[str, str] = {}
    for column in columns:
        if callable(fmt):
            names[column] = fmt(column=column, timeframe=timeframe, asset="", base="", quote="")
        else:
            names[column] = (fmt or "{column}_{timeframe}").format(
                column=column, timeframe=timeframe, asset="", base="", quote=""
            )
    return names


def merge_informative_pair(
    dataframe: pd.DataFrame,
    informative: pd.DataFrame,
    timeframe: str,
    timeframe_inf: str,
    ffill: bool = True,
    append_timeframe: bool = True,
    date_column: str = "date",
    suffix: str | None = None,
) -> pd.DataFrame:
    """Join ``informative`` (candles of ``timeframe_inf`` with their indicators) to
    ``dataframe`` (candles of ``timeframe``): each row gets the last informative candle
    closed by its own close, never the one still forming. Columns are renamed
    ``{column}_{timeframe_inf}`` (or ``{column}_{suffix}``) unless ``append_timeframe`` is
    False and no suffix is given."""
    lower_ms, higher_ms = TIMEFRAME_MS.get(timeframe), TIMEFRAME_MS.get(timeframe_inf)
    if lower_ms is None or higher_ms is None:
        raise DataFrameStrategyError(
            f"merge_informative_pair: unknown timeframe {timeframe!r} or {timeframe_inf!r}"
        )
    lower_ts = _epoch_ms(dataframe[date_column])
    if lower_ts.shape[0] > 1 and spacing_ms(lower_ts) != lower_ms:
        raise DataFrameStrategyError(
            f"merge_informative_pair: the candles are {_timeframe_name(spacing_ms(lower_ts))}, "
            f"not {timeframe}; pass self.timeframe"
        )
    check_higher(lower_ms, timeframe_inf)
    higher_ts = _epoch_ms(informative[date_column])
    visible = np.searchsorted(higher_ts + higher_ms, lower_ts + lower_ms, side="right")
    tag = suffix or (timeframe_inf if append_timeframe else None)
    names = {c: f"{c}_{tag}" if tag else c for c in informative.columns}
    return _join(dataframe, informative, visible, names, ffill)


class _DataProvider:
    """The part of freqtrade's ``self.dp`` a strategy on one market can use: that
    market's higher timeframes, closed candles only."""

    def __init__(self, strategy: DataFrameStrategy, candles: Candles | None) -> None:
        self._strategy = strategy
        self._candles = candles

    def current_whitelist(self) -> list[str]:
        return [""]  # the traded market (its name is not needed to read its candles)

    def get_pair_dataframe(
        self, pair: str = "", timeframe: str | None = None, candle_type: Any = None
    ) -> pd.DataFrame:
        if pair:
            raise DataFrameStrategyError(
                f"dp.get_pair_dataframe({pair!r}): only the traded market is available; "
                "pass metadata['pair']"
            )
        if self._candles is None:
            raise DataFrameStrategyError("dp is only available while the strategy runs")
        if timeframe is None or timeframe == self._strategy.timeframe:
            return candle_frame(self._candles)
        if timeframe not in self._strategy.higher_timeframes():
            raise DataFrameStrategyError(
                f"dp.get_pair_dataframe(timeframe={timeframe!r}): declare it in "
                "informative_pairs() so bots load it"
            )
        return candle_frame(higher_candles(self._candles, timeframe).candles)

    get_analyzed_dataframe = None  # freqtrade's live-only view: not available


class DataFrameStrategy(TradingStrategy):
    """Base class of DataFrame strategies (see the module docstring)."""

    name: ClassVar[str]
    description: ClassVar[str]
    Params: ClassVar[type[BaseModel]]

    INTERFACE_VERSION: ClassVar[int] = 3
    timeframe: str | None = None
    startup_candle_count: ClassVar[int] = 0
    stoploss: ClassVar[float | None] = None
    minimal_roi: ClassVar[Mapping[str, float]] = {}
    trailing_stop_positive: ClassVar[float | None] = None
    trailing_stop_positive_offset: ClassVar[float] = 0.0
    use_exit_signal: ClassVar[bool] = True

    _parameters: ClassVar[dict[str, Parameter]] = {}
    _informative: ClassVar[list[tuple[str, _Informative]]] = []
    _defaults: ClassVar[tuple[float | None, float | None, float | None]] = (None, None, None)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        if "description" not in cls.__dict__:
            paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
            cls.description = " ".join(paragraph.split()) or f"DataFrame strategy {cls.__name__}"
        cls._refuse_unsupported()
        cls._defaults = cls._exits()
        cls._parameters = {
            attr: value
            for klass in reversed(cls.__mro__)
            for attr, value in vars(klass).items()
            if isinstance(value, Parameter) and not attr.startswith("_")
        }
        fields = {attr: param.field(attr) for attr, param in cls._parameters.items()}
        cls.Params = create_model(  # type: ignore[call-overload]
            f"{cls.__name__}Params", __config__=ConfigDict(extra="forbid"), **fields
        )
        cls._informative = sorted(
            (
                (attr, mark)
                for attr in dir(cls)
                for mark in getattr(getattr(cls, attr, None), "_informative", ())
            ),
            key=lambda item: (item[1].timeframe, item[0]),
        )

    @classmethod
    def _refuse_unsupported(cls) -> None:
        reasons = [
            f"{method}() is not supported"
            for method in UNSUPPORTED_METHODS
            if callable(getattr(cls, method, None))
        ]
        reasons += [
            f"{flag} = True is not supported"
            for flag in UNSUPPORTED_FLAGS
            if getattr(cls, flag, False)
        ]
        if reasons:
            raise TypeError(f"strategy {cls.__name__}: " + "; ".join(reasons))

    @classmethod
    def _exits(cls) -> tuple[float | None, float | None, float | None]:
        """(stop loss, take profit, trailing stop) as fractions, from freqtrade's attributes."""
        where = f"strategy {cls.__name__}"
        stop: float | None = None
        if cls.stoploss is not None:
            if cls.stoploss >= 0:
                raise TypeError(f"{where}: stoploss is negative (-0.10 for 10 % below entry)")
            stop = -cls.stoploss if cls.stoploss > -1 else None
        roi = {str(k): float(v) for k, v in cls.minimal_roi.items()}
        take: float | None = None
        if roi:
            if set(roi) != {"0"}:
                raise TypeError(
                    f"{where}: minimal_roi with steps after minute 0 is not supported (this "
                    'engine has one take profit: minimal_roi = {"0": 0.05})'
                )
            if roi["0"] <= 0:
                raise TypeError(f"{where}: minimal_roi must be above 0")
            take = roi["0"] if roi["0"] < 100 else None  # freqtrade's way of turning it off
        trailing: float | None = None
        flag = cls.__dict__.get("trailing_stop")
        if isinstance(flag, bool):
            # freqtrade's flag; removed so that the engine's trailing_stop() is the one read
            delattr(cls, "trailing_stop")
            cls._trailing_flag = flag
        if getattr(cls, "_trailing_flag", False):
            if cls.trailing_stop_positive is not None or cls.trailing_stop_positive_offset:
                raise TypeError(
                    f"{where}: trailing_stop_positive and its offset are not supported; a "
                    "trailing stop trails by |stoploss| from the entry on"
                )
            if stop is None:
                raise TypeError(f"{where}: trailing_stop = True needs a stoploss to trail by")
            trailing = stop
        return stop, take, trailing

    _trailing_flag: ClassVar[bool] = False

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        super().__init__(params)
        for attr, param in self._parameters.items():
            setattr(self, attr, param.bound(getattr(self.params, attr)))
        self.dp = _DataProvider(self, None)

    # --- what subclasses write --------------------------------------------------------
    def populate_indicators(
        self, dataframe: pd.DataFrame, metadata: dict[str, Any]
    ) -> pd.DataFrame:
        """Add indicator columns."""
        return dataframe

    def populate_entry_trend(
        self, dataframe: pd.DataFrame, metadata: dict[str, Any]
    ) -> pd.DataFrame:
        """Set ``enter_long`` to 1 on the candles to enter after."""
        legacy = getattr(self, "populate_buy_trend", None)
        if legacy is not None:  # freqtrade's interface 2: a "buy" column
            return legacy(dataframe, metadata).rename(columns={"buy": "enter_long"})
        return dataframe

    def populate_exit_trend(
        self, dataframe: pd.DataFrame, metadata: dict[str, Any]
    ) -> pd.DataFrame:
        """Set ``exit_long`` to 1 on the candles to exit after."""
        legacy = getattr(self, "populate_sell_trend", None)
        if legacy is not None:
            return legacy(dataframe, metadata).rename(columns={"sell": "exit_long"})
        return dataframe

    def informative_pairs(self) -> list[tuple[str, ...]]:
        """``[(pair, timeframe), ...]`` read through ``self.dp`` (the traded pair only)."""
        return []

    # --- the engine's side ------------------------------------------------------------
    @property
    def warmup(self) -> int:
        return max(1, int(self.startup_candle_count))

    def higher_timeframes(self) -> dict[str, int]:
        needs = {mark.timeframe for _, mark in self._informative}
        needs |= {str(pair[1]) for pair in self.informative_pairs()}
        return dict.fromkeys(sorted(needs), self.warmup)

    def stop_loss(self) -> float | None:
        return self._defaults[0]

    def take_profit(self) -> float | None:
        return self._defaults[1]

    def trailing_stop(self) -> float | None:
        return self._defaults[2]

    def analyze(self, candles: Candles) -> pd.DataFrame:
        """The populated DataFrame of ``candles`` (what :meth:`signals` reads)."""
        n = len(candles)
        metadata: dict[str, Any] = {"pair": ""}
        lower_ms = spacing_ms(candles.timestamp)
        self.timeframe = _timeframe_name(lower_ms)
        self.dp = _DataProvider(self, candles)
        frame = candle_frame(candles)
        dates = frame["date"].copy()
        for attr, mark in self._informative:
            higher: HigherCandles = higher_candles(candles, mark.timeframe)
            populated = getattr(self, attr)(candle_frame(higher.candles), metadata)
            self._check(populated, len(higher.candles), f"{attr} ({mark.timeframe})")
            names = _column_names(list(populated.columns), mark.timeframe, mark.fmt)
            frame = _join(frame, populated, higher.visible, names, mark.ffill)
        for step in (self.populate_indicators, self.populate_entry_trend, self.populate_exit_trend):
            frame = step(frame, metadata)
            self._check(frame, n, step.__name__)
        if not frame["date"].equals(dates):
            raise DataFrameStrategyError(
                f"strategy {self.name}: the candles were reordered or their dates changed"
            )
        return frame

    def signals(self, candles: Candles) -> SignalArray:
        frame = self.analyze(candles)
        out = np.zeros(len(candles), dtype=np.int8)
        out[_flag(frame, "enter_long")] = ENTER_LONG
        if self.use_exit_signal:
            out[_flag(frame, "exit_long")] = EXIT_LONG
        out[: self.startup_candle_count] = 0  # the warm-up: no signal is trusted yet
        return out

    def _check(self, frame: Any, rows: int, step: str) -> None:
        if not isinstance(frame, pd.DataFrame):
            raise DataFrameStrategyError(
                f"strategy {self.name}: {step} returned {type(frame).__name__}, not the DataFrame"
            )
        if len(frame) != rows:
            raise DataFrameStrategyError(
                f"strategy {self.name}: {step} returned {len(frame)} rows for {rows} candles "
                "(add columns; never drop or add rows)"
            )


def _flag(frame: pd.DataFrame, column: str) -> np.ndarray:
    if column not in frame.columns:
        return np.zeros(len(frame), dtype=np.bool_)
    values = pd.to_numeric(frame[column], errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return np.asarray(values == 1, dtype=np.bool_)
