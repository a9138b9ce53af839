"""Tokenizer and recursive-descent parser of the rule language (no ``eval``, ever).

Grammar (lowest precedence first)::

    rule       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum (("<" | "<=" | ">" | ">=" | "==" | "!=" |
                        "crosses_above" | "crosses_below") sum)?
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | FIELD [ "(" "tf" "=" STRING ")" ]
                | FUNCTION "(" [args] ")" | "(" rule ")"
    args       := arg ("," arg)* ("," NAME "=" kwvalue)* | NAME "=" kwvalue ("," NAME "=" kwvalue)*
    arg        := NUMBER | "-" NUMBER | FIELD
    kwvalue    := arg | STRING

FIELD is one of open, high, low, close, volume; FUNCTION one of :data:`FUNCTIONS`; a
keyword argument names a parameter of the function (``bb_upper(20, k=2.5)``) or ``tf``,
the timeframe the function reads (``rsi(14, tf="4h")``: the 4-hour RSI of the last
closed 4-hour candle; ``close(tf="1d")``: the last daily close). Every node is typed
(number or boolean) while parsing, so ``close and 3`` or ``rsi(14)`` alone as a rule are
rejected with the column of the problem.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from shared.rules.functions import FIELDS, FUNCTIONS, FunctionSpec
from shared.timeframes import TIMEFRAME_MS

MAX_RULE_LENGTH = 2_000
MAX_NODES = 300
MAX_DEPTH = 40
MAX_NUMBER = 1e12

Kind = Literal["number", "bool"]


class RuleSyntaxError(ValueError):
    """A rule that does not parse; ``position`` is the 0-based offset of the culprit."""

    def __init__(self, message: str, source: str, position: int) -> None:
        self.message = message
        self.source = source
        self.position = position
        caret = " " * position + "^"
        super().__init__(f"{message} at column {position + 1}\n  {source}\n  {caret}")


# --- tree -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Node:
    position: int

    @property
    def kind(self) -> Kind:
        raise NotImplementedError


@dataclass(frozen=True)
class Number(Node):
    value: float

    @property
    def kind(self) -> Kind:
        return "number"


@dataclass(frozen=True)
class Field(Node):
    name: str
    tf: str | None = None  # a higher timeframe's last closed candle; None: the trading one

    @property
    def kind(self) -> Kind:
        return "number"


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[float | str, ...]  # numbers and field names, defaults filled in
    tf: str | None = None  # computed on this higher timeframe's closed candles

    @property
    def kind(self) -> Kind:
        return "number"


@dataclass(frozen=True)
class Negate(Node):
    operand: Node

    @property
    def kind(self) -> Kind:
        return "number"


@dataclass(frozen=True)
class Arithmetic(Node):
    op: str  # + - * /
    left: Node
    right: Node

    @property
    def kind(self) -> Kind:
        return "number"


@dataclass(frozen=True)
class Comparison(Node):
    op: str  # < <= > >= == != crosses_above crosses_below
    left: Node
    right: Node

    @property
    def kind(self) -> Kind:
        return "bool"


@dataclass(frozen=True)
class Logical(Node):
    op: str  # and / or
    left: Node
    right: Node

    @property
    def kind(self) -> Kind:
        return "bool"


@dataclass(frozen=True)
class Not(Node):
    operand: Node

    @property
    def kind(self) -> Kind:
        return "bool"


# --- tokens -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Token:
    type: Literal["number", "name", "string", "op", "(", ")", ",", "=", "end"]
    text: str
    position: int


_TOKEN = re.compile(
    r"\s*(?:(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z_0-9]*)"
    r"|(?P<string>\"[^\"\n]*\"|'[^'\n]*')"
    r"|(?P<op><=|>=|==|!=|<|>|\+|-|\*|/)|(?P<punct>[(),=]))"
)
_KEYWORDS = {"and", "or", "not", "crosses_above", "crosses_below"}
_COMPARISONS = {"<", "<=", ">", ">=", "==", "!=", "crosses_above", "crosses_below"}


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    end = len(source.rstrip())
    while pos < end:
        match = _TOKEN.match(source, pos)
        if match is None or match.end() == pos:
            start = pos + (len(source[pos:]) - len(source[pos:].lstrip()))
            char = source[start]
            hint = {
                ".": " (attribute access is not allowed)",
                "[": " (indexing is not allowed)",
                "'": " (a string is never closed)",
                '"': " (a string is never closed)",
            }.get(char, "")
            raise RuleSyntaxError(f"unexpected character {char!r}{hint}", source, start)
        kind = match.lastgroup
        text = match.group(kind or "")
        start = match.start(kind or 0)
        if kind == "number":
            tokens.append(Token("number", text, start))
        elif kind == "string":
            tokens.append(Token("string", text[1:-1], start))
        elif kind == "name":
            tokens.append(Token("op" if text in _COMPARISONS else "name", text, start))
        elif kind == "op":
            tokens.append(Token("op", text, start))
        else:
            tokens.append(Token(text, text, start))  # type: ignore[arg-type]
        pos = match.end()
    tokens.append(Token("end", "", end))
    return tokens


# --- parser -----------------------------------------------------------------------------
class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = tokenize(source)
        self.index = 0
        self.nodes = 0
        self.depth = 0

    # token helpers
    @property
    def current(self) -> Token:
        return self.tokens[self.index]

    def at_end(self) -> bool:
        return self.current.type == "end"

    def advance(self) -> Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def error(self, message: str, token: Token | None = None) -> RuleSyntaxError:
        token = token or self.current
        return RuleSyntaxError(message, self.source, token.position)

    def expect(self, type_: str, what: str) -> Token:
        if self.current.type != type_:
            found = self.current.text or "the end of the rule"
            raise self.error(f"expected {what}, found {found!r}")
        return self.advance()

    def node(self, node: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.error(f"rule too complex (more than {MAX_NODES} parts)")
        return node

    def require(self, node: Node, kind: Kind, what: str) -> Node:
        if node.kind != kind:
            found = "a number" if node.kind == "number" else "a condition"
            raise RuleSyntaxError(
                f"{what} must be {_article(kind)}, found {found}", self.source, node.position
            )
        return node

    # grammar
    def parse(self) -> Node:
        if self.at_end():
            raise self.error("empty rule")
        tree = self.or_expr()
        if not self.at_end():
            hint = " (use == to compare)" if self.current.type == "=" else ""
            raise self.error(f"unexpected {self.current.text!r}{hint}")
        return self.require(tree, "bool", "a rule")

    def or_expr(self) -> Node:
        left = self.and_expr()
        while self.current.type == "name" and self.current.text == "or":
            token = self.advance()
            right = self.and_expr()
            self.require(left, "bool", "the left side of 'or'")
            self.require(right, "bool", "the right side of 'or'")
            left = self.node(Logical(token.position, "or", left, right))
        return left

    def and_expr(self) -> Node:
        left = self.not_expr()
        while self.current.type == "name" and self.current.text == "and":
            token = self.advance()
            right = self.not_expr()
            self.require(left, "bool", "the left side of 'and'")
            self.require(right, "bool", "the right side of 'and'")
            left = self.node(Logical(token.position, "and", left, right))
        return left

    def not_expr(self) -> Node:
        if self.current.type == "name" and self.current.text == "not":
            token = self.advance()
            operand = self.nested(self.not_expr)
            self.require(operand, "bool", "the operand of 'not'")
            return self.node(Not(token.position, operand))
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        if self.current.type == "op" and self.current.text in _COMPARISONS:
            token = self.advance()
            right = self.sum()
            self.require(left, "number", f"the left side of {token.text!r}")
            self.require(right, "number", f"the right side of {token.text!r}")
            node = self.node(Comparison(token.position, token.text, left, right))
            if self.current.type == "op" and self.current.text in _COMPARISONS:
                raise self.error("chained comparisons are not allowed; join them with 'and'")
            return node
        return left

    def sum(self) -> Node:
        left = self.product()
        while self.current.type == "op" and self.current.text in {"+", "-"}:
            token = self.advance()
            right = self.product()
            self.require(left, "number", f"the left side of {token.text!r}")
            self.require(right, "number", f"the right side of {token.text!r}")
            left = self.node(Arithmetic(token.position, token.text, left, right))
        return left

    def product(self) -> Node:
        left = self.unary()
        while self.current.type == "op" and self.current.text in {"*", "/"}:
            token = self.advance()
            right = self.unary()
            self.require(left, "number", f"the left side of {token.text!r}")
            self.require(right, "number", f"the right side of {token.text!r}")
            left = self.node(Arithmetic(token.position, token.text, left, right))
        return left

    def unary(self) -> Node:
        if self.current.type == "op" and self.current.text == "-":
            token = self.advance()
            operand = self.nested(self.unary)
            self.require(operand, "number", "the operand of '-'")
            return self.node(Negate(token.position, operand))
        return self.primary()

    def nested(self, rule: Callable[[], Node]) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"rule nested too deeply (more than {MAX_DEPTH} levels)")
        try:
            return rule()
        finally:
            self.depth -= 1

    def primary(self) -> Node:
        token = self.current
        if token.type == "number":
            self.advance()
            return self.node(Number(token.position, self.number(token)))
        if token.type == "(":
            self.advance()
            inner = self.nested(self.or_expr)
            self.expect(")", "')'")
            return inner
        if token.type == "name":
            if token.text in _KEYWORDS:
                raise self.error(f"unexpected {token.text!r}")
            self.advance()
            if token.text in FIELDS:
                tf = self.field_timeframe(token) if self.current.type == "(" else None
                return self.node(Field(token.position, token.text, tf))
            spec = FUNCTIONS.get(token.text)
            if spec is None:
                raise RuleSyntaxError(
                    f"unknown name {token.text!r}; allowed fields: {', '.join(FIELDS)}; "
                    f"functions: {', '.join(sorted(FUNCTIONS))}",
                    self.source,
                    token.position,
                )
            if self.current.type != "(":
                raise self.error(f"expected '(' after {token.text!r}")
            args, tf = self.call_args(token, spec)
            return self.node(Call(token.position, token.text, args, tf))
        if token.type == "string":
            raise self.error('a string is only allowed as a timeframe, e.g. tf="4h"')
        found = token.text or "the end of the rule"
        raise self.error(f"expected a number, a field or a function, found {found!r}")

    def call_args(
        self, name: Token, spec: FunctionSpec
    ) -> tuple[tuple[float | str, ...], str | None]:
        self.expect("(", "'('")
        values: list[float | str] = []
        keywords: dict[str, float | str] = {}
        tf: str | None = None
        while self.current.type != ")":
            if values or keywords or tf is not None:
                self.expect(",", "',' or ')'")
            if self.current.type == "name" and self.tokens[self.index + 1].type == "=":
                key = self.advance()
                self.advance()
                if key.text in keywords or (key.text == "tf" and tf is not None):
                    raise self.error(f"{key.text} given twice", key)
                if key.text == "tf":
                    tf = self.timeframe()
                else:
                    keywords[key.text] = self.argument(name)
            elif keywords or tf is not None:
                raise self.error("a positional argument cannot follow a keyword argument")
            else:
                values.append(self.argument(name))
        self.expect(")", "')'")
        try:
            return spec.bind(values, keywords), tf
        except ValueError as exc:
            raise RuleSyntaxError(f"{name.text}(): {exc}", self.source, name.position) from None

    def argument(self, name: Token) -> float | str:
        token = self.current
        if token.type == "name" and token.text in FIELDS:
            self.advance()
            return token.text
        if token.type == "number":
            self.advance()
            return self.number(token)
        if token.type == "op" and token.text == "-":
            self.advance()
            return -self.number(self.expect("number", "a number"))
        found = token.text or "the end of the rule"
        raise self.error(
            f"arguments of {name.text}() are numbers or candle fields, found {found!r}"
        )

    def timeframe(self) -> str:
        token = self.expect("string", 'a timeframe in quotes, e.g. tf="4h"')
        if token.text not in TIMEFRAME_MS:
            raise self.error(
                f"unknown timeframe {token.text!r}; use one of {', '.join(TIMEFRAME_MS)}", token
            )
        return token.text

    def field_timeframe(self, field: Token) -> str:
        """``close(tf="4h")``: a candle field of a higher timeframe."""
        self.expect("(", "'('")
        key = self.current
        if not (key.type == "name" and key.text == "tf"):
            raise self.error(
                f'{field.text!r} is a candle field; call it only as {field.text}(tf="4h")'
            )
        self.advance()
        self.expect("=", "'='")
        tf = self.timeframe()
        self.expect(")", "')'")
        return tf

    def number(self, token: Token) -> float:
        value = float(token.text)
        if abs(value) > MAX_NUMBER:
            raise self.error(f"number {token.text} is too large", token)
        return value


def _article(kind: Kind) -> str:
    return "a number" if kind == "number" else "a condition"


def parse_rule(source: str) -> Node:
    """Parse a rule into a typed tree, or raise :class:`RuleSyntaxError`."""
    if not isinstance(source, str):
        raise RuleSyntaxError("a rule must be text", "", 0)
    if len(source) > MAX_RULE_LENGTH:
        raise RuleSyntaxError(
            f"rule too long ({len(source)} characters, at most {MAX_RULE_LENGTH})",
            source[:40] + "...",
            0,
        )
    return _Parser(source).parse()
