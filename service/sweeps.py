"""Expanding a batch request into job specs: dotted paths, cartesian grids, seeded sampling.

Pure functions over plain JSON values. They do not validate the job spec itself: every
expanded spec goes through the same validation as a single job (see ``service.batches``).

A path is dotted, and a segment that indexes a list is a non-negative integer:
``training.optimizer.learning_rate``, ``network.layers.0.units``. Missing dictionary keys
are created (the job spec fills defaults for what a base leaves out); list indices must
exist in the base.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.schemas.names import DISTRIBUTIONS

# Leaves longer than this (inline arrays, explicit weights) are summarised in ``params``.
MAX_PARAM_JSON_CHARS = 200


class SweepError(ValueError):
    """A sweep definition that cannot be expanded; ``loc`` points into the request body."""

    def __init__(self, loc: Sequence[str | int], msg: str) -> None:
        super().__init__(msg)
        self.loc = tuple(loc)
        self.msg = msg


@dataclass(frozen=True)
class Expanded:
    """One job of a batch: its (unvalidated) spec and the values that vary across the batch."""

    spec: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


# A job spec is a few levels deep: a longer path is a mistake or an attack (issue 11: a
# 2,000-segment path was a 500).
MAX_PATH_CHARS = 200
MAX_PATH_SEGMENTS = 16
# randint bounds: integers a float, JSON and the database hold exactly.
MAX_RANDINT = 2**53


def parse_path(path: str) -> tuple[str | int, ...]:
    """Split a dotted path; all-digit segments become list indices."""
    if not isinstance(path, str) or not path or any(not s for s in path.split(".")):
        raise ValueError(f"{str(path)[:80]!r} is not a dotted path like 'training.epochs'")
    if len(path) > MAX_PATH_CHARS or path.count(".") >= MAX_PATH_SEGMENTS:
        raise ValueError(
            f"a dotted path has at most {MAX_PATH_CHARS} characters and {MAX_PATH_SEGMENTS} parts"
        )
    return tuple(int(s) if s.isdigit() else s for s in path.split("."))


def set_path(spec: Mapping[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``spec`` with ``value`` at ``path`` (see the module docstring).

    Only the objects and lists along the path are copied; every other subtree (e.g. a
    large inline dataset) is shared with ``spec``, so a 1000-job sweep does not hold 1000
    copies of it. Treat the result as read-only.
    """
    parts = parse_path(path)
    return _set(dict(spec), parts, 0, value)


def _set(node: Any, parts: tuple[str | int, ...], depth: int, value: Any) -> Any:
    """Copy ``node`` (already a fresh container) and write ``value`` below it."""
    part = parts[depth]
    last = depth == len(parts) - 1
    where = ".".join(str(p) for p in parts[:depth]) or "the spec"
    if isinstance(node, list):
        if not isinstance(part, int):
            raise ValueError(f"{where} is a list: {part!r} must be an index")
        if part >= len(node):
            raise ValueError(f"{where} has {len(node)} items: index {part} is out of range")
        key: str | int = part
    elif isinstance(node, dict):
        key = str(part)
        if not last and node.get(key) is None:
            if isinstance(parts[depth + 1], int):
                here = ".".join(str(p) for p in parts[: depth + 1])
                raise ValueError(f"{here} is not in the base spec: it cannot be indexed")
            node[key] = {}
    else:
        raise ValueError(f"{where} is not an object or a list")
    if last:
        node[key] = copy.deepcopy(value)
        return node
    child = node[key]
    if not isinstance(child, dict | list):
        here = ".".join(str(p) for p in parts[: depth + 1])
        raise ValueError(f"{here} is not an object or a list")
    node[key] = _set(type(child)(child), parts, depth + 1, value)
    return node


def apply_params(base: Mapping[str, Any], params: Mapping[str, Any], section: str) -> dict:
    """Set every ``path: value`` of ``params`` in a copy of ``base``, in order."""
    spec = dict(base)
    for path, value in params.items():
        try:
            spec = set_path(spec, path, value)
        except ValueError as exc:
            raise SweepError(("body", section, path), str(exc)) from None
    return spec


def grid_size(grid: Mapping[str, Sequence[Any]]) -> int:
    """How many jobs a grid expands to (checked before anything is materialised)."""
    return math.prod(len(values) for values in grid.values())


def expand_grid(
    base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], max_jobs: int
) -> list[Expanded]:
    """The cartesian product of ``grid`` over ``base``: the first path varies slowest.

    Raises
    ------
    SweepError
        On an empty grid, a path or value list that is not usable, or more than ``max_jobs``.
    """
    if not isinstance(grid, Mapping) or not grid:
        raise SweepError(("body", "grid"), "grid must map at least one dotted path to values")
    for path, values in grid.items():
        _check_path(("body", "grid", path), path)
        if not isinstance(values, list) or not values:
            raise SweepError(("body", "grid", path), "must be a non-empty list of values")
    size = grid_size(grid)
    if size > max_jobs:
        raise SweepError(
            ("body", "grid"), f"the grid expands to {size} jobs; at most {max_jobs} are allowed"
        )
    paths = list(grid)
    expanded = []
    for combination in itertools.product(*(grid[p] for p in paths)):
        params = dict(zip(paths, combination, strict=True))
        expanded.append(Expanded(apply_params(base, params, "grid"), params))
    return expanded


def expand_random(
    base: Mapping[str, Any],
    random: Mapping[str, Mapping[str, Any]],
    samples: int,
    seed: int,
    max_jobs: int,
) -> list[Expanded]:
    """``samples`` specs with each path drawn from its distribution, reproducible from ``seed``.

    Distributions (one per path): ``{"uniform": [a, b]}``, ``{"loguniform": [a, b]}`` with
    0 < a <= b (uniform in log space), ``{"randint": [lo, hi]}`` (both ends included),
    ``{"choice": [v1, v2, ...]}`` (any JSON values, e.g. whole layer lists). Draws come from
    ``numpy.random.default_rng(seed)`` sample by sample, path by path in the given order.
    """
    if not isinstance(random, Mapping) or not random:
        raise SweepError(("body", "random"), "random must map at least one dotted path")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise SweepError(("body", "samples"), "samples must be a positive integer")
    if samples > max_jobs:
        raise SweepError(("body", "samples"), f"at most {max_jobs} jobs are allowed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise SweepError(("body", "seed"), "seed must be a non-negative integer")
    samplers = {path: sampler(path, dist, "random") for path, dist in random.items()}
    rng = np.random.default_rng(seed)
    expanded = []
    for _ in range(samples):
        params = {path: draw(rng) for path, draw in samplers.items()}
        expanded.append(Expanded(apply_params(base, params, "random"), params))
    return expanded


def _check_path(loc: tuple[str | int, ...], path: str) -> None:
    try:
        parse_path(path)
    except ValueError as exc:
        raise SweepError(loc, str(exc)) from None


def sampler(path: str, dist: Any, section: str) -> Callable[[np.random.Generator], Any]:
    """Check one distribution of ``body.<section>`` and return ``draw(rng) -> JSON value``."""
    loc: tuple[str | int, ...] = ("body", *section.split("."), path)
    _check_path(loc, path)
    if not isinstance(dist, Mapping) or len(dist) != 1 or next(iter(dist)) not in DISTRIBUTIONS:
        raise SweepError(loc, f"must be one of {{name: args}} with name in {list(DISTRIBUTIONS)}")
    name, args = next(iter(dist.items()))
    loc = (*loc, name)
    if name == "choice":
        if not isinstance(args, list) or not args:
            raise SweepError(loc, "choice needs a non-empty list of values")
        options = list(args)
        return lambda rng: copy.deepcopy(options[int(rng.integers(len(options)))])
    if not isinstance(args, list) or len(args) != 2 or not all(_is_number(a) for a in args):
        raise SweepError(loc, f"{name} needs two numbers [low, high]")
    low, high = args
    try:
        float(low), float(high)
    except OverflowError:
        raise SweepError(loc, f"{name} bounds must be finite numbers") from None
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise SweepError(loc, f"{name} needs finite bounds with low <= high")
    if not math.isfinite(float(high) - float(low)):
        raise SweepError(loc, f"{name} needs a finite range high - low")
    if name == "uniform":
        return lambda rng: float(rng.uniform(low, high))
    if name == "loguniform":
        if low <= 0:
            raise SweepError(loc, "loguniform needs 0 < low <= high")
        log_low, log_high = math.log(low), math.log(high)
        return lambda rng: float(math.exp(rng.uniform(log_low, log_high)))
    if not all(isinstance(a, int) for a in args):
        raise SweepError(loc, "randint needs two integers [low, high] (both included)")
    if not all(-MAX_RANDINT <= a <= MAX_RANDINT for a in args):
        raise SweepError(loc, f"randint bounds must be within ±2**53 ({MAX_RANDINT})")
    return lambda rng: int(rng.integers(low, high, endpoint=True))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def flatten(spec: Any, prefix: str = "") -> dict[str, Any]:
    """Leaves of a spec by dotted path; lists of objects are indexed, other lists are leaves."""
    if isinstance(spec, Mapping) and spec:
        leaves: dict[str, Any] = {}
        for key, value in spec.items():
            leaves.update(flatten(value, f"{prefix}{key}."))
        return leaves
    if isinstance(spec, list) and spec and all(isinstance(v, Mapping) for v in spec):
        leaves = {}
        for index, value in enumerate(spec):
            leaves.update(flatten(value, f"{prefix}{index}."))
        return leaves
    return {prefix[:-1]: spec}


_MISSING = object()


def varied_params(specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """For an explicit list of specs, each spec's values at the paths where the specs differ.

    Large leaves (inline data, explicit weights) are summarised as ``"<list of N>"``.
    """
    flat = [flatten(spec) for spec in specs]
    paths: list[str] = []
    for leaves in flat:
        paths.extend(p for p in leaves if p not in paths)
    varied = [p for p in paths if len({_canonical(f.get(p, _MISSING)) for f in flat}) > 1]
    return [{p: _summary(f[p]) for p in varied if p in f} for f in flat]


def _canonical(value: Any) -> str:
    if value is _MISSING:
        return "\x00missing"
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _summary(value: Any) -> Any:
    if len(_canonical(value)) <= MAX_PARAM_JSON_CHARS:
        return value
    return f"<{type(value).__name__} of {len(value)}>" if isinstance(value, list | dict) else "…"
