"""Hypothesis strategies shared by the suite: hostile param trees, metric dicts and names.

Import them as `from strategies import param_trees` (tests/ is on sys.path, as for conftest).
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

__all__ = [
    "Unprintable",
    "hostile_param_trees",
    "hostile_values",
    "huge_texts",
    "metric_dicts",
    "names",
    "param_keys",
    "param_trees",
    "scalars",
]

# What MLflow rejects in a key, what it treats as a path, and what stays readable.
_KEY_ALPHABET = [*"/.\\-_ :a1é\n\t#%?*\x00'\"@=+,;[](){}~<>|", "ß", "中", "🙂"]


def huge_texts(min_size: int = 6001, max_size: int = 20_000) -> st.SearchStrategy[str]:
    """Strings over MLflow's 6000-character param limit, built cheaply by repetition."""
    return st.builds(
        lambda chunk, n: (chunk * (max_size // max(len(chunk), 1) + 1))[:n],
        st.text(min_size=1, max_size=8),
        st.integers(min_size, max_size),
    )


def names() -> st.SearchStrategy[str]:
    """Arbitrary key text: rejected characters, '/', '..', '//', leading '/', very long."""
    segment = st.sampled_from(["", ".", "..", "a", "b c", "x:y", "ok", "-", "é"])
    path_like = st.builds(
        lambda lead, parts, trail: lead + "/".join(parts) + trail,
        st.sampled_from(["", "/", "//", "./", "../"]),
        st.lists(segment, min_size=1, max_size=6),
        st.sampled_from(["", "/", "/.", "/.."]),
    )
    long_text = st.builds(
        lambda chunk, n: (chunk * (n // max(len(chunk), 1) + 1))[:n],
        st.text(st.sampled_from(_KEY_ALPHABET), min_size=1, max_size=6),
        st.integers(240, 700),
    )
    return st.one_of(
        st.text(max_size=40),
        st.text(st.sampled_from(_KEY_ALPHABET), max_size=40),
        # surrogates: not encodable, must still become a valid key
        st.text(st.characters(codec=None, categories=["Cs", "Ll", "Po"]), max_size=10),
        path_like,
        long_text,
    )


def param_keys() -> st.SearchStrategy[Any]:
    """Dict keys a config may have: text, ints, tuples, None, bools, floats, bytes."""
    return st.one_of(
        names(),
        st.integers(),
        st.none(),
        st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.binary(max_size=8),
        st.tuples(st.integers(-5, 5), st.text(max_size=3)),
    )


def scalars() -> st.SearchStrategy[Any]:
    """Leaves of a config: None, bools, ints, NaN/inf floats, unicode, bytes, huge strings."""
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(),
        st.text(st.sampled_from(_KEY_ALPHABET)),
        st.binary(max_size=32),
        huge_texts(),
    )


def _nest(value: Any, wrappers: list[int]) -> Any:
    for kind in wrappers:
        value = {"k": value} if kind == 0 else [value, 1] if kind == 1 else (value,)
    return value


def param_trees() -> st.SearchStrategy[Any]:
    """Arbitrary nested dicts/lists/tuples of `scalars()`, keyed by `param_keys()`, some deep."""
    tree = st.recursive(
        scalars(),
        lambda children: st.one_of(
            st.dictionaries(param_keys(), children, max_size=5),
            st.lists(children, max_size=5),
            st.lists(children, max_size=4).map(tuple),
        ),
        max_leaves=20,
    )
    deep = st.builds(_nest, tree, st.lists(st.integers(0, 2), min_size=10, max_size=30))
    return st.one_of(tree, deep)


def metric_dicts() -> st.SearchStrategy[dict[Any, Any]]:
    """Metrics as a training function returns them: numbers (NaN/inf too) under any names."""
    numbers = st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**63), 2**63),
        st.booleans(),
    )
    return st.recursive(
        st.dictionaries(names(), numbers, max_size=6),
        lambda children: st.dictionaries(names(), st.one_of(numbers, children), max_size=4),
        max_leaves=12,
    )


class Unprintable:
    """An object whose str() and repr() both raise."""

    def __repr__(self) -> str:
        raise RuntimeError("unprintable")

    __str__ = __repr__


def _looped(value: Any, kind: int) -> Any:
    """A dict or a list that contains itself."""
    if kind == 0:
        loop: dict[str, Any] = {"value": value}
        loop["self"] = loop
        return loop
    items: list[Any] = [value]
    items.append(items)
    return items


def hostile_values() -> st.SearchStrategy[Any]:
    """Param values that are not plain data: `scalars()` plus unprintable objects, dicts and
    lists that contain themselves, sets, bytearrays, callables and ints too long for str()."""
    return st.one_of(
        scalars(),
        st.builds(Unprintable),
        st.builds(_looped, scalars(), st.integers(0, 1)),
        st.frozensets(st.integers(), max_size=3),
        st.binary(max_size=16).map(bytearray),
        st.sampled_from([len, print, Unprintable, object()]),
        st.integers(4400, 6000).map(lambda digits: 10**digits),
    )


def hostile_param_trees() -> st.SearchStrategy[Any]:
    """Nested dicts and lists of `hostile_values()`, keyed by `param_keys()`."""
    return st.recursive(
        hostile_values(),
        lambda children: st.one_of(
            st.dictionaries(param_keys(), children, max_size=4),
            st.lists(children, max_size=4),
        ),
        max_leaves=15,
    )
