"""Keys and values MLflow accepts: sanitize_key, is_valid_key, truncate."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.utils.validation import _validate_metric_name, _validate_param_name
from strategies import names, param_keys

from tracked.capture.keys import (
    MAX_KEY_LENGTH,
    MAX_TAG_LENGTH,
    clean_text,
    escape_text,
    is_valid_key,
    sanitize_key,
    short_hash,
    truncate,
    was_truncated,
)

_MARKER = re.compile(r"\.\.\.\[xxh:[0-9a-f]{8}\]\Z")


@settings(max_examples=300, deadline=None)
@given(names())
def test_sanitize_key_output_is_valid_and_accepted_by_mlflow(key: str) -> None:
    safe = sanitize_key(key)

    assert is_valid_key(safe)
    assert 0 < len(safe) <= MAX_KEY_LENGTH
    _validate_metric_name(safe)
    _validate_param_name(safe)


@settings(max_examples=100, deadline=None)
@given(param_keys())
def test_sanitize_key_accepts_non_string_keys(key: object) -> None:
    safe = sanitize_key(key)

    assert is_valid_key(safe)
    _validate_param_name(safe)


@settings(max_examples=200, deadline=None)
@given(names())
def test_sanitize_key_leaves_valid_keys_unchanged(key: str) -> None:
    if is_valid_key(key):
        assert sanitize_key(key) == key
    safe = sanitize_key(key)
    assert sanitize_key(safe) == safe  # idempotent: a rewritten key is a valid key


@pytest.mark.parametrize(
    "key", ["loss", "val/auc", "optimizer.lr", "a-b_c d", "épsilon", "x" * MAX_KEY_LENGTH]
)
def test_valid_keys_are_valid_and_unchanged(key: str) -> None:
    assert is_valid_key(key)
    assert sanitize_key(key) == key


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a//b", "a/b"),
        ("/lead", "lead"),
        ("trail/", "trail"),
        ("../up", "_/up"),
        ("a/./b", "a/_/b"),
        ("a:b", "a_b"),  # colons break Windows stores
        ("", "_"),
        ("..", "_"),
        ("acc@top1", "acc_top1"),
    ],
)
def test_sanitize_key_rewrites_readably(key: str, expected: str) -> None:
    assert not is_valid_key(key)
    assert sanitize_key(key) == expected


def test_long_keys_keep_their_head_and_stay_distinct() -> None:
    first, second = "k" * 300 + "a", "k" * 300 + "b"

    one, two = sanitize_key(first), sanitize_key(second)

    assert len(one) == len(two) == MAX_KEY_LENGTH
    assert one.startswith("k" * 200)
    assert one.endswith("-" + short_hash(first))
    assert one != two


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(20, 400))
def test_truncate_respects_the_limit_and_marks_the_cut(value: str, limit: int) -> None:
    cut = truncate(value, limit)

    assert len(cut) <= limit
    if len(value) <= limit:
        assert cut == value
    else:
        assert _MARKER.search(cut)
        assert cut.endswith(f"[xxh:{short_hash(value)}]")
        assert value.startswith(cut[: cut.rindex("...[xxh:")])


def test_truncate_keeps_two_long_values_with_the_same_prefix_apart() -> None:
    head = "p" * 7000
    assert truncate(head + "1", 6000) != truncate(head + "2", 6000)


def test_truncate_with_a_limit_shorter_than_the_marker_stays_within_it() -> None:
    assert len(truncate("x" * 100, 5)) <= 5


# -- clean_text: escaped, redacted, cut; once, in that order -------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.text(), st.integers(20, 300))
def test_clean_text_is_valid_utf8_without_nul_within_the_limit(value: str, limit: int) -> None:
    clean = clean_text(value, limit=limit)

    clean.encode("utf-8")  # strict: no lone surrogate left
    assert "\x00" not in clean and len(clean) <= limit


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("nul\x00here", "nul\\x00here"),
        ("/data/caf\udce9.csv", "/data/caf\\udce9.csv"),
        ("\ud83d\ude00", "\\ud83d\\ude00"),  # a surrogate pair in a str is two lone halves
    ],
)
def test_escape_text_makes_nul_and_surrogates_visible(value: str, expected: str) -> None:
    assert escape_text(value) == expected
    assert clean_text(value, limit=100) == expected


def test_clean_text_redacts_by_name_and_by_shape() -> None:
    assert clean_text("hunter2", limit=100, name="DB_PASSWORD") == "***"
    assert clean_text("https://u:hunter2@h/p", limit=100, name="url") == "https://u:***@h/p"


@settings(max_examples=100, deadline=None)
@given(st.integers(MAX_TAG_LENGTH - 60, MAX_TAG_LENGTH + 10))
def test_clean_text_redacts_before_cutting_at_the_tag_limit(offset: int) -> None:
    key = "AKIA" + "Q7" * 8  # an AWS access key id
    value = "." * offset + " " + key + " " + "." * 100

    clean = clean_text(value, limit=MAX_TAG_LENGTH)

    assert "AKIA" not in clean and "Q7Q7" not in clean
    assert was_truncated(clean) == (len(value.replace(key, "***")) > MAX_TAG_LENGTH)
