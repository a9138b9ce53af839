"""Walk-forward folds: training windows end where their test windows begin, and no trial
ever sees a candle of its fold's test window."""

import uuid
from typing import ClassVar

import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field

import shared.strategies as strategies
from analysis_service.optimisations.folds import shortage, windows
from analysis_service.optimisations.runner import StudyJob, Worker, WorkerConfig
from shared.candles import Candles
from shared.strategies import TradingStrategy
from tests.shared.sample_candles import random_candles


def test_each_training_window_ends_where_its_test_window_begins():
    folds = windows(1000, 4)
    assert [(w.train_start, w.train_stop, w.test_stop) for w in folds] == [
        (0, 200, 400),
        (200, 400, 600),
        (400, 600, 800),
        (600, 800, 1000),
    ]
    anchored = windows(1003, 4, anchored=True)
    assert [w.train_start for w in anchored] == [0, 0, 0, 0]
    assert anchored[-1].test_stop == 1003  # the last test window takes the remainder


def test_no_test_candle_is_in_its_training_window_on_the_boundaries():
    candles = random_candles(1000, seed=4)
    for anchored in (False, True):
        for window in windows(len(candles), 5, anchored=anchored):
            train = window.train(candles)
            history, trade_from = window.test_with_history(candles)
            test_first = int(history.timestamp[trade_from])
            assert int(train.timestamp[-1]) < test_first
            assert int(train.timestamp[-1]) == int(candles.timestamp[window.train_stop - 1])
            assert test_first == int(candles.timestamp[window.train_stop])
            assert len(history) - trade_from == (window.test_stop or 0) - window.train_stop


def test_too_few_candles_for_the_folds_says_how_many_are_needed():
    assert shortage(2000, 4, 60) is None
    message = shortage(500, 4, 200)
    assert message is not None
    assert "4 walk-forward folds over 500 candles leave 100 candles per window" in message
    assert "at least 230" in message
    assert shortage(100, None, 90) is not None


class SpyParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    period: int = Field(default=10, ge=2, le=50)


class Spy(TradingStrategy):
    """Records the range of candles each call sees; trades a simple momentum rule."""

    name = "spy"
    description = "test spy"
    Params = SpyParams
    params: SpyParams
    seen: ClassVar[list[tuple[int, int]]] = []

    @property
    def warmup(self) -> int:
        return self.params.period

    def signals(self, candles: Candles) -> np.ndarray:
        Spy.seen.append((int(candles.timestamp[0]), int(candles.timestamp[-1])))
        close = candles.close
        out = np.zeros(len(candles), dtype=np.int8)
        p = self.params.period
        out[p:][close[p:] > close[:-p]] = 1
        out[p:][close[p:] < close[:-p]] = -1
        return out


@pytest.fixture
def spy(monkeypatch):
    monkeypatch.setattr(strategies, "_plugins", lambda: {"spy": Spy})
    Spy.seen = []
    return Spy


def test_trials_of_a_fold_see_only_its_training_window(spy, redis_url):
    candles = random_candles(1200, seed=9)
    settings = {
        "strategy": "spy",
        "space": {"period": {"low": 2, "high": 20}},
        "n_trials": 5,
        "min_trades": 0,
        "seed": 3,
        "walk_forward": {"folds": 3},
    }
    job = StudyJob(str(uuid.uuid4()), settings, candles, WorkerConfig(redis_url=redis_url))
    outcome = Worker(job).run()
    assert outcome.finished
    assert outcome.trials_run == 15
    ts = candles.timestamp
    folds = windows(len(candles), 3)
    training = {(int(ts[w.train_start]), int(ts[w.train_stop - 1])) for w in folds}
    testing = {(int(ts[w.train_start]), int(ts[(w.test_stop or 0) - 1])) for w in folds}
    whole = {(int(ts[0]), int(ts[-1]))}
    assert set(spy.seen) <= training | testing | whole
    trial_calls = [seen for seen in spy.seen if seen in training]
    assert len(trial_calls) == 15  # every trial on its training window, nothing more
    for window in folds:
        start = int(ts[window.train_start])
        last_trained = max(last for first, last in trial_calls if first == start)
        assert last_trained < int(ts[window.train_stop])  # the test window's first candle
