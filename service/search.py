"""Searching a tenant's jobs: the filter and order grammar, parsed into bound SQL.

    filter   := compare ("and" compare)*
    compare  := key op literal | key "in" "(" literal ("," literal)* ")"
    op       := "<" | "<=" | "=" | "!=" | ">=" | ">"
    key      := "status" | "name" | "batch_id" | "created_at"
              | "summary." metric "." stat | "spec." segment ("." segment)*
    literal  := number | 'string' | "string" | true | false
    order_by := key ["asc" | "desc"] ("," key ["asc" | "desc"])*

A hand-written tokenizer and recursive-descent parser turn the text into ``Compare`` and
``Order`` values; ``where`` and ``order_keys`` build SQLAlchemy expressions in which
every literal and every JSON path is a bound parameter (no SQL is built from the text).
Any error is a 422 at ``["query", "filter"]`` (or ``order_by``) naming the offending token
and its position. docs/compare.md documents the grammar for users.

``spec.<path>`` compares a value of the job's validated spec by the literal's type: a
number matches only JSON numbers (compared as numbers), a string only strings, true/false
only booleans; anything else (a missing path, another type) does not match. Keywords are
case-insensitive. Kernel code: no Flask.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Float, Select, and_, case, cast, func, literal
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from service.cursors import ordered_page, paginate
from service.models import Job, JobSummary, summary_column
from service.problems import Invalid
from service.schemas.names import METRICS, SUMMARY_STATS, JobStatus
from service.timeutil import as_utc

SUMMARY = JobSummary.__table__
FILTER_LOC = ("query", "filter")
ORDER_LOC = ("query", "order_by")
MAX_COMPARISONS = 20
MAX_IN_VALUES = 100
MAX_PATH_DEPTH = 12
MAX_ORDER_KEYS = 3
MAX_STRING = 500

COLUMNS = {"status": Job.status, "name": Job.name, "batch_id": Job.batch_id}
OPS = ("<=", ">=", "!=", "<", ">", "=")
KEYWORDS = ("and", "in", "asc", "desc", "true", "false")

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<key>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<string>'(?:[^']|'')*'|"(?:[^"]|"")*")
  | (?P<op><=|>=|!=|<>|<|>|=)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # number | key | keyword | string | op | punct | end
    text: str
    pos: int  # 0-based offset in the expression
    value: Any = None


@dataclass(frozen=True)
class Key:
    """What a comparison or an ordering is about: a column, a summary stat or a spec path."""

    name: str  # as written, e.g. "summary.val_loss.min"
    kind: str  # column | created_at | summary | spec
    path: tuple[str, ...] = ()


@dataclass(frozen=True)
class Compare:
    key: Key
    op: str  # one of OPS, or "in"
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Order:
    key: Key
    descending: bool


def tokenize(text: str, loc: tuple[str, str]) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise _error(loc, Token("char", text[pos], pos), "a key, an operator or a value")
        kind, raw = match.lastgroup or "", match.group()
        if kind == "key" and raw.lower() in KEYWORDS:
            tokens.append(Token("keyword", raw.lower(), pos))
        elif kind == "string":
            value = raw[1:-1].replace(raw[0] * 2, raw[0])
            if len(value) > MAX_STRING or "\x00" in value:
                raise _error(loc, Token("string", raw, pos), f"a string of at most {MAX_STRING}"
                             " characters without NUL")  # fmt: skip
            tokens.append(Token("string", raw, pos, value))
        elif kind == "number":
            tokens.append(Token("number", raw, pos, _number(raw, loc, pos)))
        elif kind == "op":
            tokens.append(Token("op", "!=" if raw == "<>" else raw, pos))
        elif kind != "space":
            tokens.append(Token(kind, raw, pos))
        pos = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


def _number(raw: str, loc: tuple[str, str], pos: int) -> float | int:
    value = float(raw)
    if not math.isfinite(value):
        raise _error(loc, Token("number", raw, pos), "a finite number")
    if re.fullmatch(r"[-+]?\d+", raw) and abs(int(raw)) < 2**53:
        return int(raw)
    return value


def _error(loc: tuple[str, str], token: Token, expected: str) -> Invalid:
    shown = "the end" if token.kind == "end" else f"`{token.text}`"
    return Invalid.at(loc, f"unexpected {shown} at position {token.pos}: expected {expected}")


class _Parser:
    """Recursive descent over the tokens; each method consumes one rule."""

    def __init__(self, text: str, loc: tuple[str, str]) -> None:
        self.loc = loc
        self.tokens = tokenize(text, loc)
        self.at = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.at]

    def take(self, kind: str, expected: str, text: str | None = None) -> Token:
        token = self.token
        if token.kind != kind or (text is not None and token.text != text):
            raise _error(self.loc, token, expected)
        self.at += 1
        return token

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        token = self.token
        if token.kind == kind and (text is None or token.text == text):
            self.at += 1
            return token
        return None

    # filter := compare ("and" compare)*
    def filter(self) -> list[Compare]:
        compares = [self.compare()]
        while self.accept("keyword", "and"):
            if len(compares) == MAX_COMPARISONS:
                raise _error(self.loc, self.tokens[self.at - 1],
                             f"at most {MAX_COMPARISONS} comparisons")  # fmt: skip
            compares.append(self.compare())
        self.take("end", "'and' or the end")
        return compares

    # compare := key op literal | key "in" "(" literal ("," literal)* ")"
    def compare(self) -> Compare:
        key = self.key()
        if self.accept("keyword", "in"):
            self.take("punct", "'('", "(")
            values = [self.literal(key)]
            while self.accept("punct", ","):
                if len(values) == MAX_IN_VALUES:
                    raise _error(self.loc, self.token, f"at most {MAX_IN_VALUES} values in a list")
                token = self.token
                values.append(self.literal(key))
                if _kind_of(values[-1]) != _kind_of(values[0]):
                    raise _error(self.loc, token, f"a {_kind_of(values[0])} like the list's first")
            self.take("punct", "',' or ')'", ")")
            return Compare(key, "in", tuple(values))
        op = self.take("op", f"an operator ({', '.join(OPS)}) or 'in'")
        value = self.literal(key)
        if isinstance(value, bool) and op.text not in ("=", "!="):
            raise _error(
                self.loc, self.tokens[self.at - 1], "a number or a string after " + op.text
            )
        return Compare(key, op.text, (value,))

    def key(self) -> Key:
        token = self.take("key", "a key (status, name, batch_id, created_at, summary.*, spec.*)")
        parts = token.text.split(".")
        head = parts[0]
        if head in COLUMNS and len(parts) == 1:
            return Key(head, "column")
        if head == "created_at" and len(parts) == 1:
            return Key(head, "created_at")
        if head == "summary" and len(parts) == 3:
            metric, stat = parts[1], parts[2]
            if metric in METRICS and stat in SUMMARY_STATS:
                return Key(token.text, "summary", (metric, stat))
            raise _error(self.loc, token, f"summary.<metric>.<stat> with a metric of "
                         f"{list(METRICS)} and a stat of {list(SUMMARY_STATS)}")  # fmt: skip
        if head == "spec" and 1 < len(parts) <= MAX_PATH_DEPTH + 1:
            return Key(token.text, "spec", tuple(parts[1:]))
        raise _error(self.loc, token, "a key (status, name, batch_id, created_at, "
                     "summary.<metric>.<stat>, spec.<dotted path>)")  # fmt: skip

    def literal(self, key: Key) -> Any:
        token = self.token
        if key.kind == "summary":
            return self.take("number", f"a number to compare {key.name} with").value
        if key.kind == "spec":
            if token.kind == "keyword" and token.text in ("true", "false"):
                self.at += 1
                return token.text == "true"
            if token.kind in ("number", "string"):
                self.at += 1
                return token.value
            raise _error(self.loc, token, f"a number, a string, true or false for {key.name}")
        value = self.take("string", f"a quoted string for {key.name}").value
        if key.name == "status" and value not in JobStatus.__members__:
            raise _error(self.loc, token, f"a status of {list(JobStatus.__members__)}")
        if key.kind == "created_at":
            try:
                return as_utc(datetime.fromisoformat(value))
            except ValueError:
                raise _error(
                    self.loc, token, "an ISO 8601 time, e.g. '2026-12-01T10:00:00Z'"
                ) from None
        return value

    # order_by := key ["asc" | "desc"] ("," key ["asc" | "desc"])*
    def order(self) -> list[Order]:
        orders: list[Order] = []
        while True:
            key = self.key()
            direction = self.accept("keyword", "desc") or self.accept("keyword", "asc")
            orders.append(Order(key, direction is not None and direction.text == "desc"))
            if not self.accept("punct", ","):
                break
            if len(orders) == MAX_ORDER_KEYS:
                raise _error(self.loc, self.tokens[self.at - 1], f"at most {MAX_ORDER_KEYS} keys")
        self.take("end", "'asc', 'desc', ',' or the end")
        return orders


def parse_filter(text: str) -> list[Compare]:
    return _Parser(text, FILTER_LOC).filter()


def parse_order(text: str) -> list[Order]:
    return _Parser(text, ORDER_LOC).order()


# --- to SQL ----------------------------------------------------------------------------------


def page(
    session: Session,
    query: Select[Any],
    filter_text: str | None,
    order_by: str | None,
    limit: int | None,
    cursor: str | None,
    max_limit: int,
) -> tuple[list[Job], str | None]:
    """A page of ``query``'s jobs that match ``filter_text``, ordered by ``order_by``
    (default: newest first), and the next page's cursor."""
    compares = parse_filter(filter_text) if filter_text else []
    orders = parse_order(order_by) if order_by else []
    dialect = session.get_bind().dialect.name
    # The summary's own tenant column lets the planner start from its (tenant, stat) index.
    joined = and_(SUMMARY.c.job_id == Job.id, SUMMARY.c.tenant_id == Job.tenant_id)
    if needs_summary([c.key for c in compares]):  # a job without a summary cannot match
        query = query.join(SUMMARY, joined)
    elif needs_summary([o.key for o in orders]):  # ... but it is listed, last
        query = query.outerjoin(SUMMARY, joined)
    query = query.where(*where(compares, dialect))
    if not orders:
        return paginate(session, query, Job, limit, cursor, max_limit)
    signature = ",".join(f"{o.key.name} {'desc' if o.descending else 'asc'}" for o in orders)
    keys = order_keys(orders, dialect)
    return ordered_page(session, query, keys, Job.id, signature, limit, cursor, max_limit)


def needs_summary(keys: list[Key]) -> bool:
    return any(key.kind == "summary" for key in keys)


def where(compares: list[Compare], dialect: str) -> list[ColumnElement[bool]]:
    """One bound SQL condition per comparison (the query must join ``SUMMARY`` when a
    summary key is used: ``needs_summary``)."""
    return [_condition(c, dialect) for c in compares]


def _condition(compare: Compare, dialect: str) -> ColumnElement[bool]:
    sample = compare.values[0]
    column = _expression(compare.key, dialect, _kind_of(sample))
    if compare.op == "in":
        return column.in_(list(compare.values))
    return _OPERATORS[compare.op](column, sample)


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "string"


def order_keys(orders: list[Order], dialect: str) -> list[tuple[ColumnElement[Any], bool]]:
    """(expression, descending) for each ordering; a spec path orders by its numeric value,
    then its text (so numbers sort as numbers, and strings still sort)."""
    keys: list[tuple[ColumnElement[Any], bool]] = []
    for order in orders:
        if order.key.kind == "spec":
            keys.append((_expression(order.key, dialect, "number"), order.descending))
            keys.append((_expression(order.key, dialect, "string"), order.descending))
        else:
            keys.append((_expression(order.key, dialect, ""), order.descending))
    return keys


def _expression(key: Key, dialect: str, kind: str) -> Any:
    if key.kind == "column":
        return COLUMNS[key.name]
    if key.kind == "created_at":
        return Job.created_at
    if key.kind == "summary":
        return SUMMARY.c[summary_column(*key.path)]
    return _spec_value(key.path, dialect, kind)


def _spec_value(path: tuple[str, ...], dialect: str, kind: str) -> ColumnElement[Any]:
    """The spec's value at ``path`` if it is a JSON ``kind`` (number, string, boolean as
    'true'/'false'), else NULL. Path segments are bound parameters."""
    if dialect == "postgresql":
        segments = [literal(part) for part in path]
        typeof = func.json_typeof(func.json_extract_path(Job.spec, *segments))
        text = func.json_extract_path_text(Job.spec, *segments)
        if kind == "number":
            return case((typeof == "number", cast(text, Float)))
        if kind == "boolean":
            return case((typeof == "boolean", text == "true"))
        return case((typeof == "string", text))
    json_path = "$" + "".join(f"[{int(p)}]" if p.isdigit() else f'."{p}"' for p in path)
    bound = literal(json_path)
    sqlite_type = func.json_type(Job.spec, bound)
    value = func.json_extract(Job.spec, bound)
    if kind == "number":
        return case((sqlite_type.in_(["integer", "real"]), cast(value, Float)))
    if kind == "boolean":
        return case((sqlite_type.in_(["true", "false"]), sqlite_type == "true"))
    return case((sqlite_type == "text", value))


_OPERATORS: dict[str, Any] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}
