"""GET /jobs?filter=&order_by=: exactly the right jobs in exactly the right order, page by
page, on SQLite and PostgreSQL; every bad expression is a 422 naming its token; fuzzed
expressions never make a 5xx."""

from __future__ import annotations

import copy
import functools
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from service import jobs, search, summaries
from service.db import transaction
from service.models import Tenant
from service.problems import Invalid
from tests.service.conftest import SPIRALS_SPEC

OPTIMIZERS = ["adam", "sgd", "momentum"]
RATES = [0.001, 0.01, 0.1, 0.5]


def make_jobs(app, n=24, seed=0):
    """Jobs with varied specs and summaries (ties included, some without any point, some
    without validation); returns {id: job answer}."""
    rng = random.Random(seed)
    sessions = app.extensions["deltaflow"].sessions
    with transaction(sessions) as session:
        tenant = session.scalar(select(Tenant.id).where(Tenant.name == "acme"))
        for i in range(n):
            spec = copy.deepcopy(SPIRALS_SPEC)
            spec["training"]["optimizer"] = {
                "name": OPTIMIZERS[i % 3],
                "learning_rate": RATES[i % 4],
            }
            spec["network"]["layers"][0]["units"] = 2 + i % 5
            job = jobs.create_job(session, tenant, spec, name=f"job {i % 7}")
            if i % 6 == 5:
                continue  # no point yet: a null summary
            validated = i % 8 != 3
            points = [
                {
                    "epoch": e,
                    "train_loss": rng.choice([0.1, 0.2, 0.3, 0.4, 0.5]),
                    "val_loss": rng.choice([0.1, 0.25, 0.5, 0.75]) if validated else None,
                    "train_accuracy": rng.choice([0.5, 0.75, 1.0]),
                    "val_accuracy": rng.choice([0.5, 0.75, 1.0]) if validated else None,
                }
                for e in range(1, 2 + i % 4)
            ]
            summaries.record(session, job.id, points)
    return all_jobs(app)


def all_jobs(app):
    with app.test_client() as client:
        auth = app.config["AUTH"]
        out, cursor = {}, None
        while True:
            page = client.get(
                "/api/v1/jobs", query_string={"cursor": cursor or ""}, headers=auth
            ).json
            out.update({job["id"]: job for job in page["items"]})
            if not (cursor := page["next_cursor"]):
                return out


def value_of(job: dict[str, Any], key: str) -> Any:
    head, *rest = key.split(".")
    if head == "summary":
        return job["summary"][rest[0]][rest[1]]
    if head != "spec":
        return job[head]
    value: Any = job["spec"]
    for part in rest:
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            return None
    return value


def same_kind(a: Any, b: Any) -> bool:
    number = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (isinstance(a, number) and isinstance(b, number)) or type(a) is type(b)


def matches(job, compares) -> bool:
    import operator

    ops = {"<": operator.lt, "<=": operator.le, "=": operator.eq, "!=": operator.ne,
           ">=": operator.ge, ">": operator.gt}  # fmt: skip
    for key, op, values in compares:
        value = value_of(job, key)
        if value is None or not same_kind(value, values[0]):
            return False
        if op == "in":
            if value not in values:
                return False
        elif not ops[op](value, values[0]):
            return False
    return True


def ordered(found, orders):
    def compare(a, b):
        for key, descending in orders:
            x, y = value_of(a, key), value_of(b, key)
            if (x is None) != (y is None):
                return 1 if x is None else -1
            if x != y:
                return (1 if x > y else -1) * (-1 if descending else 1)
        last_descending = orders[-1][1]
        return (1 if a["id"] > b["id"] else -1) * (-1 if last_descending else 1)

    return [job["id"] for job in sorted(found, key=functools.cmp_to_key(compare))]


def listed(client, auth, limit=4, **query):
    ids, cursor = [], None
    while True:
        args = {**query, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = client.get("/api/v1/jobs", query_string=args, headers=auth)
        assert response.status_code == 200, response.json
        ids += [job["id"] for job in response.json["items"]]
        if not (cursor := response.json["next_cursor"]):
            return ids


CASES = [
    # (filter, parsed comparisons for the reference, order_by, parsed orders)
    ("summary.val_loss.min < 0.5", [("summary.val_loss.min", "<", [0.5])],
     "summary.val_loss.min", [("summary.val_loss.min", False)]),
    ("summary.val_loss.min <= 0.25 AND spec.training.optimizer.name = 'adam'",
     [("summary.val_loss.min", "<=", [0.25]), ("spec.training.optimizer.name", "=", ["adam"])],
     "summary.val_loss.min desc", [("summary.val_loss.min", True)]),
    ("spec.training.optimizer.learning_rate in (0.01, 0.5)",
     [("spec.training.optimizer.learning_rate", "in", [0.01, 0.5])],
     "spec.training.optimizer.learning_rate desc, name",
     [("spec.training.optimizer.learning_rate", True), ("name", False)]),
    ("spec.training.optimizer.name != 'adam'", [("spec.training.optimizer.name", "!=", ["adam"])],
     "name desc", [("name", True)]),
    ("status = 'queued' and summary.train_loss.last >= 0.3",
     [("status", "=", ["queued"]), ("summary.train_loss.last", ">=", [0.3])],
     "summary.train_loss.last, summary.val_loss.max desc",
     [("summary.train_loss.last", False), ("summary.val_loss.max", True)]),
    ("spec.network.layers.0.units > 4", [("spec.network.layers.0.units", ">", [4])],
     "spec.network.layers.0.units", [("spec.network.layers.0.units", False)]),
    ("name = \"job 3\"", [("name", "=", ["job 3"])], "summary.val_accuracy.argmax_epoch",
     [("summary.val_accuracy.argmax_epoch", False)]),
    ("spec.dataset.standardize = false", [("spec.dataset.standardize", "=", [False])],
     "summary.val_loss.last asc", [("summary.val_loss.last", False)]),
    ("spec.training.optimizer.name = 1", [("spec.training.optimizer.name", "=", [1])],
     "name", [("name", False)]),
    ("spec.no.such.path = 'x'", [("spec.no.such.path", "=", ["x"])], "name", [("name", False)]),
]  # fmt: skip


@pytest.fixture
def searched(backend_app):
    app, auth = backend_app
    app.config["AUTH"] = auth
    return app, auth, make_jobs(app)


def test_filters_and_orderings_return_exactly_the_right_jobs_page_by_page(searched):
    app, auth, everything = searched
    client = app.test_client()
    sizes = []
    for text, compares, order_by, orders in CASES:
        expected = [j for j in everything.values() if matches(j, compares)]
        sizes.append(len(expected))
        got = listed(client, auth, filter=text, order_by=order_by)
        assert got == ordered(expected, orders), (text, order_by)
        # Without order_by: newest first, the same set.
        assert set(listed(client, auth, filter=text)) == {j["id"] for j in expected}
    assert sum(1 < size < len(everything) for size in sizes) >= 6, sizes  # the cases select


def test_an_ordered_page_is_stable_when_jobs_are_added_before_the_cursor(searched):
    app, auth, everything = searched
    client = app.test_client()
    query = {"order_by": "summary.train_loss.min", "limit": 5}
    first = client.get("/api/v1/jobs", query_string=query, headers=auth).json
    sessions = app.extensions["deltaflow"].sessions
    with transaction(sessions) as session:  # a job that sorts before everything listed
        tenant = session.scalar(select(Tenant.id).where(Tenant.name == "acme"))
        early = jobs.create_job(session, tenant, SPIRALS_SPEC, name="early")
        summaries.record(session, early.id, [{"epoch": 1, "train_loss": -1.0}])
    rest, cursor = [], first["next_cursor"]
    while cursor:
        page = client.get("/api/v1/jobs", query_string={**query, "cursor": cursor}, headers=auth)
        rest += [job["id"] for job in page.json["items"]]
        cursor = page.json["next_cursor"]
    whole = ordered(everything.values(), [("summary.train_loss.min", False)])
    assert [j["id"] for j in first["items"]] + rest == whole
    # A cursor belongs to its ordering.
    other = client.get(
        "/api/v1/jobs",
        query_string={"order_by": "name", "cursor": first["next_cursor"]},
        headers=auth,
    )
    assert other.status_code == 422
    assert other.json["errors"][0]["loc"] == ["query", "cursor"]


BAD_FILTERS = [  # (filter, the token the 422 names: None for the end)
    ("summary.val_loss.min < 'x'", "'x'"),
    ("status = 'nope'", "'nope'"),
    ("foo = 1", "foo"),
    ("summary.val_loss.avg < 1", "summary.val_loss.avg"),
    ("summary.test_loss.min < 1", "summary.test_loss.min"),
    ("spec.training.epochs < true", "true"),
    ("name = 'unterminated", "'"),
    ("status = 'queued' or name = 'x'", "or"),
    ("name = 'x'; DROP TABLE jobs; --", ";"),
    ("name = 'x' -- comment", "-"),
    ("spec.training.optimizer.name = 'adam\x00'", "'adam\x00'"),
    ("summary.val_loss.min < 1e999", "1e999"),
    (") (", ")"),
    ("   ", None),
    ("name in ()", ")"),
    ("name in ('a' 'b')", "'b'"),
    ("name in (" + ",".join(["'a'"] * 101) + ")", "'a'"),  # the 101st
    (" and ".join(["name = 'a'"] * 21), "and"),
    ("spec." + ".".join(["a"] * 13) + " = 1", "spec." + ".".join(["a"] * 13)),
    ("created_at > 'yesterday'", "'yesterday'"),
    ("name = ", None),
    ("summary.val_loss.min < < 1", "<"),
    ("status = queued", "queued"),
    ("spec = 1", "spec"),
    ("name = '" + "x" * 501 + "'", "'" + "x" * 501 + "'"),
    ("spec.a = null", "null"),
]


@pytest.mark.parametrize(("text", "token"), BAD_FILTERS)
def test_a_bad_filter_is_422_naming_the_offending_token(client, auth, text, token):
    response = client.get("/api/v1/jobs", query_string={"filter": text}, headers=auth)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    error = response.json["errors"][0]
    assert error["loc"] == ["query", "filter"]
    shown = "the end" if token is None else f"`{token}`"
    assert f"unexpected {shown} at position " in error["msg"], error["msg"]


@pytest.mark.parametrize(
    ("order_by", "token"),
    [("summary.val_loss.min sideways", "`sideways`"), ("drop", "`drop`"), ("", None),
     ("name asc, name desc, name, name", "`,`"), ("name,", "the end"), ("'name'", "`'name'`")],
)  # fmt: skip
def test_a_bad_order_by_is_422_naming_the_offending_token(client, auth, order_by, token):
    response = client.get("/api/v1/jobs", query_string={"order_by": order_by}, headers=auth)
    if token is None:  # empty: the default order
        assert response.status_code == 200
        return
    assert response.status_code == 422
    assert response.json["errors"][0]["loc"] == ["query", "order_by"]
    assert f"unexpected {token}" in response.json["errors"][0]["msg"]


def test_the_parser_binds_every_value():
    compares = search.parse_filter(
        "spec.training.optimizer.name in ('adam', 'it''s') and summary.val_loss.min < -.5e-1"
    )
    assert compares[0].values == ("adam", "it's")
    assert compares[1].values == (-0.05,)
    statement = str(search.where(compares, "sqlite")[0].compile())
    assert "adam" not in statement
    assert "it's" not in statement
    with pytest.raises(Invalid):
        search.parse_order("name desc desc")


FRAGMENTS = st.sampled_from([
    "status", "name", "batch_id", "created_at", "summary.val_loss.min", "summary.x.y",
    "spec.training.optimizer.learning_rate", "spec.network.layers.0.units", "spec.", "and",
    "AND", "in", "(", ")", ",", "<", "<=", "=", "!=", ">=", ">", "<>", "'adam'", "'", '"',
    "''", "0.1", "-3", "1e308", "1e999", "true", "false", "null", "asc", "desc", ";", "--",
    "'2026-12-01T00:00:00Z'", "'queued'", "\x00", "é", "\\", "%", "*",
])  # fmt: skip
KEYS = st.sampled_from([
    "status", "name", "batch_id", "created_at", "summary.val_loss.min",
    "summary.train_accuracy.argmax_epoch", "spec.training.optimizer.learning_rate",
    "spec.training.optimizer.name", "spec.network.layers.0.units", "spec.network.layers",
    "spec.dataset.standardize", "spec.training.early_stopping", "spec.network.layers.99.units",
])  # fmt: skip
LITERALS = st.one_of(
    st.sampled_from(["'adam'", "'queued'", "'2026-12-01T00:00:00Z'", "true", "false", "'it''s'"]),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.text(max_size=10).map(lambda t: "'" + t.replace("'", "''") + "'"),
)
COMPARISONS = st.one_of(
    st.tuples(KEYS, st.sampled_from(["<", "<=", "=", "!=", ">=", ">"]), LITERALS).map(" ".join),
    st.tuples(KEYS, st.lists(LITERALS, min_size=1, max_size=4)).map(
        lambda t: f"{t[0]} in ({', '.join(t[1])})"
    ),
)
EXPRESSIONS = st.one_of(
    st.lists(COMPARISONS, min_size=1, max_size=4).map(" and ".join),
    st.tuples(KEYS, st.sampled_from(["", " asc", " desc"])).map("".join),
    st.lists(FRAGMENTS, max_size=12).map(" ".join),
    st.lists(FRAGMENTS, max_size=12).map("".join),
    st.text(max_size=60),
)


@pytest.mark.parametrize("examples", [150])
def test_fuzzed_filters_and_orderings_never_make_a_5xx(searched, examples):
    """On a database with jobs (a SQL error at run time needs rows to meet)."""
    app, auth, _ = searched
    client = app.test_client()
    answered = []

    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(text=EXPRESSIONS, order_by=EXPRESSIONS)
    def check(text, order_by):
        for query in (
            {"filter": text},
            {"order_by": order_by},
            {"filter": text, "order_by": order_by},
        ):
            response = client.get("/api/v1/jobs", query_string=query, headers=auth)
            assert response.status_code in (200, 422), (query, response.json)
            answered.append(response.status_code)

    check()
    assert answered.count(200) > len(answered) // 10  # many are valid, not only the 422s
