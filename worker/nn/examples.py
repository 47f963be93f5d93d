"""The training examples' helpers: the validation split, class labels and correct counts."""

from __future__ import annotations

import numpy as np

from ._types import Array
from .errors import SpecError


def split_validation(
    X: Array,
    Y: Array,
    fraction: float,
    rng: np.random.Generator,
    labels: Array | None = None,
) -> tuple[Array, Array, Array | None, Array | None]:
    """A random validation split drawn from ``rng``; both parts keep the original order.

    With ``labels`` (class index per row) the split is stratified: each class gives the
    validation part its share of ``round(n * fraction)`` examples (largest remainders
    first), so a rare class is neither missing from it nor over-represented.
    """
    n = X.shape[0]
    if n == 0:
        raise SpecError("no training examples")
    n_val = int(round(n * fraction))
    if fraction > 0 and n_val == 0 and n >= 2:
        n_val = 1
    if n_val == 0:
        return X, Y, None, None
    if n_val >= n:
        raise SpecError(f"validation_split {fraction} leaves no training examples of {n}")
    order = rng.permutation(n)
    if labels is None:
        chosen = order[:n_val]
    else:
        chosen = _stratified(order, np.asarray(labels)[order], n_val)
    val_mask = np.zeros(n, dtype=bool)
    val_mask[chosen] = True
    val_index, train_index = np.flatnonzero(val_mask), np.flatnonzero(~val_mask)
    return X[train_index], Y[train_index], X[val_index], Y[val_index]


def _stratified(order: Array, labels: Array, n_val: int) -> Array:
    """``n_val`` rows of the shuffled ``order``, each class's first ones in its share."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (n_val / labels.shape[0])
    shares = np.floor(exact).astype(np.intp)
    # Largest remainders get the rows left over (ties: the larger class, then class order).
    for k in np.lexsort((-counts, -(exact - shares)))[: n_val - int(shares.sum())]:
        shares[k] += 1
    chosen = [order[labels == c][:share] for c, share in zip(classes, shares, strict=True)]
    return np.concatenate(chosen)


def class_labels(Y: Array | None) -> Array | None:
    """Class index per row: argmax of one-hot rows, or y >= 0.5 for a single output."""
    if Y is None:
        return None
    if Y.shape[1] == 1:
        return (Y[:, 0] >= 0.5).astype(np.intp)
    return np.argmax(Y, axis=1)


def count_correct(output: Array, labels: Array) -> int:
    """Correct predictions in a column-per-example output of shape (K, m)."""
    if output.shape[0] == 1:
        predicted = (output[0] >= 0.5).astype(np.intp)
    else:
        predicted = np.argmax(output, axis=0)
    return int(np.count_nonzero(predicted == labels))
