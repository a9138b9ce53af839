"""Search spaces are checked against the strategy's parameter schema, with messages that
say what to fix; ranges default to the schema's bounds."""

import pytest

from analysis_service.optimisations.plan import plan_of
from analysis_service.optimisations.schemas import StudySettings
from analysis_service.optimisations.space import SpaceError


def plan(**fields):
    return plan_of(StudySettings.model_validate({"strategy": "ma_crossover", **fields}))


def refusal(**fields) -> SpaceError:
    with pytest.raises(SpaceError) as caught:
        plan(**fields)
    return caught.value


def test_an_empty_range_takes_the_schema_bounds_and_an_enum_its_values():
    space = plan(space={"fast": {}, "ma": {}}).space
    fast, ma = space.dimensions
    assert (fast.kind, fast.low, fast.high, fast.step) == ("int", 1, 10_000, None)
    assert (ma.kind, ma.choices) == ("categorical", ("sma", "ema"))


def test_exclusive_float_bounds_are_moved_inside_the_schema():
    space = plan_of(
        StudySettings(strategy="rsi_divergence", space={"oversold": {}, "overbought": {}})
    ).space
    oversold = space.dimensions[0]
    assert oversold.kind == "float"
    assert (oversold.low, oversold.high) == (1.0, 99.0)


def test_an_empty_space_is_refused():
    problem = refusal(space={})
    assert problem.loc == ["body", "space"]
    assert "search space is empty" in problem.message


def test_an_unknown_parameter_is_refused_with_the_known_ones():
    problem = refusal(space={"fats": {"low": 5, "high": 50}})
    assert problem.loc == ["body", "space", "fats"]
    assert "no parameter 'fats'" in problem.message
    assert "fast, slow, ma" in problem.message


def test_bounds_outside_the_schema_are_refused():
    problem = refusal(space={"fast": {"low": 0, "high": 50}})
    assert problem.loc == ["body", "space", "fast", "low"]
    assert "below what fast allows (>= 1 and <= 10000)" in problem.message
    assert "above" in refusal(space={"slow": {"low": 20, "high": 20_000}}).message


def test_choices_must_fit_the_schema():
    problem = refusal(space={"ma": {"choices": ["sma", "wma"]}})
    assert problem.loc == ["body", "space", "ma", "choices", 1]
    assert "'wma' is not one of ['sma', 'ema']" in problem.message


def test_a_whole_number_parameter_takes_whole_bounds_and_log_needs_a_positive_low():
    assert "whole number" in refusal(space={"fast": {"low": 2.5, "high": 9}}).message
    log = plan(space={"slow": {"low": 20, "high": 400, "log": True}}).space.dimensions[0]
    assert log.log
    assert (
        "log scale takes no step"
        in refusal(space={"slow": {"low": 20, "high": 400, "log": True, "step": 5}}).message
    )


def test_a_space_without_one_valid_point_is_refused_with_the_strategy_error():
    problem = refusal(space={"fast": {"low": 50, "high": 60}, "slow": {"low": 20, "high": 30}})
    assert "no point of this search space gives valid parameters" in problem.message
    assert "fast must be smaller than slow" in problem.message


def test_placeholders_in_a_rule_are_searched_and_written_into_it():
    space = plan_of(
        StudySettings(
            strategy="rules",
            parameters={"entry": "rsi({period}) < {level}", "exit": "rsi({period}) > 70"},
            space={"period": {"low": 5, "high": 30}, "level": {"low": 20.0, "high": 40.0}},
        )
    ).space
    params, _ = space.resolve({"period": 14, "level": 25.5})
    assert params == {"entry": "rsi(14) < 25.5", "exit": "rsi(14) > 70"}
    assert space.warmup >= 30  # the widest rsi period of the space warms up longest


def test_a_placeholder_without_a_range_and_a_text_without_choices_are_refused():
    missing = refusal(strategy="rules", parameters={"entry": "close > sma({n})"})
    assert "placeholder(s) {n}" in missing.message
    text = refusal(strategy="rules", parameters={"exit": "rsi(14) > 70"}, space={"entry": {}})
    assert "search it with choices" in text.message


def test_stops_are_searched_when_given_a_range():
    space = plan(
        space={"fast": {"low": 5, "high": 20}},
        stop_loss={"low": 0.01, "high": 0.1},
        take_profit=0.05,
    ).space
    stop = space.dimensions[-1]
    assert (stop.name, stop.target, stop.low, stop.high) == ("stop_loss", "stop", 0.01, 0.1)
    _, stops = space.resolve({"fast": 10, "stop_loss": 0.03})
    assert stops == {"stop_loss": 0.03, "take_profit": 0.05, "trailing_stop": None}
    outside = refusal(space={"fast": {}}, stop_loss={"low": 0.5, "high": 1.5})
    assert outside.loc == ["body", "stop_loss", "high"]


def test_the_grid_sampler_needs_listable_values_and_caps_the_trials_at_the_grid():
    capped = plan(sampler="grid", n_trials=500, space={"fast": {"low": 5, "high": 9}, "ma": {}})
    assert capped.n_trials == 10
    problem = refusal(
        strategy="bollinger_bands", sampler="grid", space={"k": {"low": 1.0, "high": 3.5}}
    )
    assert "give k a step" in problem.message


def test_cma_es_is_refused_where_it_does_not_apply():
    problem = refusal(sampler="cmaes", space={"fast": {"low": 5, "high": 20}, "ma": {}})
    assert "CMA-ES applies to two or more numeric parameters" in problem.message
    assert plan(sampler="cmaes", space={"fast": {"low": 5, "high": 20}, "slow": {}}).sampler
