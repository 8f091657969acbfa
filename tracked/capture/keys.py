"""Make any name or value acceptable to MLflow without rejecting it.

MLflow refuses keys with characters outside `[/\\w.\\- :]`, keys that normalise to another path
("a//b", "./a"), keys over 250 characters, params over 6000 and tags over 8000 characters. We
never let such a value reach the store: we rewrite it, and make the rewrite traceable with a
short content hash so two different long values never collapse into one.

Every text value that reaches the store goes through `clean_text` once, in this order:

1. NULs and lone surrogates become visible escapes (``\\x00``, ``\\udcff``): PostgreSQL rejects
   NUL, and a lone surrogate (``os.fsdecode`` of a non-UTF-8 path) is not UTF-8 at all, so the
   store would refuse the whole request;
2. secrets are redacted (`tracked.capture.secrets`): the whole value when its name is a secret's,
   else the secret-shaped parts;
3. the text is cut to the store's limit with a hash suffix (`truncate`).

Redacting before cutting is what keeps a credential that straddles the cut out of the store: cut
first, its head would no longer look like a credential and would be kept.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Container

import xxhash

from tracked.capture.secrets import REDACTED, is_secret_name, redact_value

__all__ = [
    "MAX_ERROR_LENGTH",
    "MAX_KEY_LENGTH",
    "MAX_PARAM_LENGTH",
    "MAX_TAG_LENGTH",
    "clean_text",
    "escape_text",
    "is_valid_key",
    "safe_text",
    "sanitize_key",
    "short_hash",
    "truncate",
    "unique_key",
    "was_truncated",
]

MAX_KEY_LENGTH = 250
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
MAX_ERROR_LENGTH = 5000  # error text kept on a run or a promotion decision

# NUL, and any UTF-16 surrogate: in a Python str it can only be a lone one, which is not UTF-8.
_UNENCODABLE = re.compile("[\x00\ud800-\udfff]")

# Colons are valid on POSIX but not on Windows stores; we drop them so runs move between both.
_INVALID = re.compile(r"[^/\w.\- ]")
_SLASH_RUNS = re.compile(r"/{2,}")
_MARKER = re.compile(r"\.\.\.\[xxh:[0-9a-f]{8}\]\Z")


def short_hash(text: str) -> str:
    """8 hex characters of the xxh3-64 hash of `text`, to mark truncated or rewritten values."""
    return xxhash.xxh3_64_hexdigest(text.encode("utf-8", "surrogatepass"))[:8]


def is_valid_key(key: str) -> bool:
    """Whether MLflow accepts `key` as a param, metric or tag name."""
    if not key or len(key) > MAX_KEY_LENGTH or _INVALID.search(key):
        return False
    norm = posixpath.normpath(key)
    return not (norm != key or norm == "." or norm.startswith(("..", "/")))


def sanitize_key(key: object) -> str:
    """A valid MLflow key for `key`: itself if valid, else a readable rewrite.

    Invalid characters become `_`; path-like oddities (leading `/`, `..`, `//`, trailing `/`) are
    flattened; a key over 250 characters keeps its head plus a hash of the whole.
    """
    text = key if isinstance(key, str) else _safe_str(key)
    if is_valid_key(text):
        return text
    clean = _INVALID.sub("_", text)
    clean = _SLASH_RUNS.sub("/", clean).strip("/")
    parts = [("_" if part in (".", "..") else part) for part in clean.split("/")]
    clean = "/".join(parts) or "_"
    if len(clean) > MAX_KEY_LENGTH:
        suffix = "-" + short_hash(text)
        clean = clean[: MAX_KEY_LENGTH - len(suffix)].rstrip("/") + suffix
    if not is_valid_key(clean):  # e.g. only dots left after rewriting
        clean = "key-" + short_hash(text)
    return clean


def unique_key(key: str, raw: str, taken: Container[str]) -> str:
    """`key`, or `key-<hash of raw>` (then `-2`, `-3`...) when another value already took it.

    Two different names can sanitise to the same key (`acc@1`, `acc_1`); neither value is lost.
    """
    if key not in taken:
        return key
    candidate = base = sanitize_key(f"{key}-{short_hash(raw)}")
    counter = 1
    while candidate in taken:
        counter += 1
        candidate = sanitize_key(f"{base}-{counter}")
    return candidate


def truncate(value: str, limit: int) -> str:
    """`value` cut to `limit` characters, ending in `...[xxh:<hash>]` when cut, never rejected."""
    if len(value) <= limit:
        return value
    marker = f"...[xxh:{short_hash(value)}]"
    if limit <= len(marker):
        return marker[:limit]
    return value[: limit - len(marker)] + marker


def escape_text(text: str) -> str:
    """`text` with NULs as ``\\x00`` and lone surrogates as ``\\udcff``-style escapes: valid UTF-8
    every store accepts, and the odd character stays visible."""
    if _UNENCODABLE.search(text) is None:
        return text
    return _UNENCODABLE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return "\\x00" if char == "\x00" else f"\\u{ord(char):04x}"


def clean_text(value: str, *, limit: int, name: str | None = None) -> str:
    """`value` as the store may keep it: escaped, then redacted, then cut to `limit` characters.

    `name` is the param, tag or variable the value belongs to: a secret's name (`is_secret_name`)
    replaces the whole value with ``***``. Limits: `MAX_PARAM_LENGTH` for params,
    `MAX_TAG_LENGTH` for tags, `MAX_ERROR_LENGTH` for error text. See the module docstring for
    why the order matters.
    """
    if name is not None and is_secret_name(name):
        return REDACTED[:limit]
    return truncate(redact_value(escape_text(value)), limit)


def was_truncated(text: str) -> bool:
    """Whether `text` ends with the marker `truncate` leaves where it cut."""
    return _MARKER.search(text) is not None


def safe_text(obj: object) -> str | None:
    """`str(obj)` (repr if str raises) with NULs and lone surrogates escaped (`escape_text`);
    None when the object cannot be printed at all."""
    if isinstance(obj, str):
        text = obj
    else:
        try:
            text = str(obj)
        except Exception:
            try:
                text = repr(obj)
            except Exception:
                return None
    return escape_text(text)


def _safe_str(obj: object) -> str:
    text = safe_text(obj)
    return text if text is not None else f"<{type(obj).__name__}>"
