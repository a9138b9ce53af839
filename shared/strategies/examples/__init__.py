"""Example DataFrame strategies (docs/trading.md, DataFrame strategies).

Not in the catalog unless the operator names this folder in ``STRATEGIES_DIR``
(``STRATEGIES_DIR=shared/strategies/examples``): they show how strategies are written,
and the tests run them through backtests, bots and the look-ahead check.
"""
