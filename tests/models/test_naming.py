"""Registered-model naming templates."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracked.errors import NamingError
from tracked.models.naming import normalize_model_name, render_model_name

VALID = re.compile(r"^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$")
FIELDS = ["{project}", "{name}", "{flavor}", "{experiment}", "{tags[team]}"]
values = st.text(min_size=1, max_size=40).filter(lambda t: normalize_model_name(t) != "")


def render(template: str, **overrides: str) -> str:
    parts = {"project": "Churn", "name": "train_xgb", "experiment": "exp", "flavor": "xgboost"}
    parts.update(overrides)
    return render_model_name(template, tags={"team": "Risk"}, **parts)


def test_default_convention() -> None:
    assert render("{project}-{name}") == "churn-train_xgb"


def test_fields_and_tags() -> None:
    assert render("{project}-{name}-{flavor}") == "churn-train_xgb-xgboost"
    assert render("{tags[team]}.{experiment}") == "risk.exp"


def test_normalisation() -> None:
    assert render("{project}  /  {name}", project="My Project!") == "my-project-train_xgb"
    assert normalize_model_name("--A__B..c--") == "a_b.c"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{team}", r"unknown field \{team\}; known fields: \{project\}"),
        ("{tags[owner]}", r"no tag 'owner'"),
        ("{}", "positional"),
        ("{project", "not a valid template"),
        ("!!!", "no usable characters"),
    ],
)
def test_bad_templates_raise_naming_error(template: str, message: str) -> None:
    with pytest.raises(NamingError, match=message) as info:
        render(template)
    assert template in str(info.value)
    assert "\n" not in str(info.value)


@given(
    st.lists(
        st.one_of(st.sampled_from(FIELDS), st.text(alphabet="-_. abcXYZ019", max_size=5)),
        min_size=1,
        max_size=6,
    ).filter(lambda parts: any(p in FIELDS for p in parts)),
    values,
    values,
    values,
)
def test_any_template_over_known_fields_renders_a_valid_name(
    parts: list[str], project: str, name: str, experiment: str
) -> None:
    template = "".join(parts)
    try:
        rendered = render(template, project=project, name=name, experiment=experiment)
    except NamingError as error:  # only when nothing usable is left
        assert "no usable characters" in str(error)
        return
    assert VALID.match(rendered), rendered
    assert len(rendered) <= 256
    assert normalize_model_name(rendered) == rendered  # idempotent


@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=20).filter(str.isidentifier))
def test_unknown_field_names_give_the_documented_error(field: str) -> None:
    if field in ("project", "name", "flavor", "experiment", "tags"):
        return
    with pytest.raises(NamingError, match="unknown field"):
        render("{" + field + "}")
