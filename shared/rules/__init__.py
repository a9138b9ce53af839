"""A small, safe expression language for user trading rules.

``rsi(14) < 30 and close > sma(200)`` is tokenized and parsed into a typed tree
(:func:`parse_rule`), then evaluated over numpy arrays (:func:`evaluate`). There is no
``eval``: only the candle fields and the functions of :data:`FUNCTIONS` exist, there is
no attribute access or indexing, and rules are bounded in length, size and depth.
Syntax errors (:class:`RuleSyntaxError`) point at the offending character.
"""

from shared.rules.evaluate import evaluate, higher_lookbacks, lookback
from shared.rules.functions import FIELDS, FUNCTIONS
from shared.rules.parser import MAX_RULE_LENGTH, Node, RuleSyntaxError, parse_rule

__all__ = [
    "FIELDS",
    "FUNCTIONS",
    "MAX_RULE_LENGTH",
    "Node",
    "RuleSyntaxError",
    "evaluate",
    "higher_lookbacks",
    "lookback",
    "parse_rule",
]
