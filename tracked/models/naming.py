"""Registered-model names from a template: `"{project}-{name}"` by default.

Fields: `{project}`, `{name}` (the run or function name), `{flavor}`, `{experiment}` and any run
tag as `{tags[team]}`. The rendered name is normalised to lower case `[a-z0-9._-]` so the same
model gets the same name whatever the spelling of its parts.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from typing import Any

from tracked.config import DEFAULT_NAMING
from tracked.errors import NamingError

__all__ = ["DEFAULT_NAMING", "FIELDS", "normalize_model_name", "render_model_name"]

FIELDS = ("project", "name", "flavor", "experiment", "tags")
MAX_NAME_LENGTH = 256
_INVALID = re.compile(r"[^a-z0-9._-]+")
_REPEATS = re.compile(r"([._-])[._-]+")


def normalize_model_name(raw: str) -> str:
    """Lower-case, `[a-z0-9._-]` only, no leading/trailing separators, repeats collapsed."""
    name = _INVALID.sub("-", raw.strip().lower())
    name = _REPEATS.sub(r"\1", name).strip("._-")
    return name[:MAX_NAME_LENGTH].rstrip("._-")


def render_model_name(
    template: str,
    *,
    project: str,
    name: str,
    experiment: str,
    flavor: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """The normalised registered-model name for `template`; NamingError names what is wrong."""
    values = {
        "project": project,
        "name": name,
        "experiment": experiment,
        "flavor": flavor or "model",
        "tags": _Tags(template, tags or {}),
    }
    formatter = _Formatter(template)
    try:
        rendered = formatter.vformat(template, (), values)
    except NamingError:
        raise
    except (ValueError, IndexError, AttributeError, TypeError) as exc:
        raise NamingError(template, f"is not a valid template ({exc})") from None
    name_out = normalize_model_name(rendered)
    if not name_out:
        raise NamingError(template, f"renders to {rendered!r}, which has no usable characters")
    return name_out


class _Tags(dict):  # type: ignore[type-arg]
    def __init__(self, template: str, tags: Mapping[str, str]) -> None:
        super().__init__(tags)
        self.template = template

    def __missing__(self, key: str) -> Any:
        raise NamingError(self.template, f"the run has no tag {key!r} for {{tags[{key}]}}")


class _Formatter(string.Formatter):
    def __init__(self, template: str) -> None:
        self.template = template

    def get_value(self, key: int | str, args: Any, kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int):
            raise NamingError(self.template, "positional fields like {} or {0} are not allowed")
        if key not in kwargs:
            known = ", ".join(f"{{{f}}}" for f in FIELDS[:-1]) + ", {tags[NAME]}"
            raise NamingError(self.template, f"unknown field {{{key}}}; known fields: {known}")
        return kwargs[key]
