"""Keep credentials out of everything a run logs: params, tags, git remotes, environment.

Every param and tag passes through `redact(name, value)` before it is recorded, and git remotes
through `strip_url_credentials(url)`. A redacted secret is replaced by ``***`` (`REDACTED`); the
rest of the value stays readable, so ``postgresql://ml:hunter2@db/runs`` is logged as
``postgresql://ml:***@db/runs``.

Rules, in the order they apply:

1. **By name** (`is_secret_name`): the whole value is replaced when the name says it is a secret.
   Names are split into lower-cased word parts on ``_ - .``, other punctuation and camelCase
   (``dbPassword`` -> db, password; ``AWS_SECRET_ACCESS_KEY`` -> aws, secret, access, key). A name
   is secret when a part is one of password, passwd, passphrase, pwd, secret(s), token,
   credential(s), creds, auth, authorization, cookie, jwt, or a joined form such as apikey,
   accesskey, privatekey, authtoken, accesstoken; when a part contains password, passwd or
   credential (``PGPASSWORD``) or ends in secret (``clientsecret``); when two adjacent parts are
   api/access/private/secret/session/signing/encryption/master/account + key, or connection +
   string; or when the last part is ``pass`` (``db_pass``). Deliberately *not* secret, because ML
   code is full of them: ``tokenizer``, ``max_tokens``, ``n_tokens`` (``tokens`` is not ``token``),
   ``pad_token``/``eos_token``/``max_token`` and ``token_id``/``token_type_ids`` (a tokenizer
   word before or a count/id word after ``token``), ``passenger``, ``author``, ``authority``,
   ``key`` on its own. ``PWD`` *is* secret: the shell's working-directory variable is lost, a
   ``pwd=`` password never leaks.
2. **By shape** (`redact_value`), whatever the name. Only the secret part is replaced:

   - URLs with ``user:password@`` keep scheme, user, host and path (``https://u:***@host/p``);
     a lone token as userinfo (20+ characters with a digit) becomes ``https://***@host``.
     ``ssh://git@host`` and ``git@host:org/repo`` are left alone.
   - PEM private keys keep their BEGIN/END lines; the body (to the end of the text when the END
     line was cut off) becomes ``***``.
   - ``Bearer <token>`` keeps ``Bearer``; the token (8+ characters with a digit, or 16+) goes.
   - Whole tokens: AWS access key ids (``AKIA``/``ASIA`` + 16), GitHub (``ghp_ gho_ ghu_ ghs_
     ghr_ github_pat_``), GitLab (``glpat-``), Slack (``xoxb- xoxp- xoxa- xoxr- xoxs- xapp-``),
     JWTs (``eyJ...eyJ...``), OpenAI/Anthropic-style ``sk-`` keys (20+ characters with a digit
     and an upper-case letter, so ``sk-learn-...`` survives), Google API keys (``AIza`` + 35),
     Stripe (``sk_live_ rk_live_ sk_test_ rk_test_ whsec_``), Hugging Face (``hf_`` + 30+),
     Databricks (``dapi`` + 32 hex).
   - ``name=value``, ``name: value``, ``"name": "value"`` and ``--name value`` inside a value
     (command lines, query strings, connection strings, JSON) lose the value when ``name`` is
     secret by rule 1. This is the only way a bare AWS secret access key is caught: a plain
     40-character base64 string is indistinguishable from a digest, so it needs the context.

   Hex digests, git shas, UUIDs and our ``xxh3-128:v1:<hex>`` fingerprints never match.
3. **Your own patterns**, added at runtime with `add_secret_pattern`:

   .. code-block:: python

      from tracked.capture.secrets import add_secret_pattern

      add_secret_pattern(r"acme_[0-9a-f]{32}")                    # value: the match goes
      add_secret_pattern(r"license=(?P<secret>\\w+)")             # value: only the group goes
      add_secret_pattern(r"^corp_sso$", kind="name")              # name: re.search on the name

   A ``str`` pattern is compiled as is for values and case-insensitively for names; pass a
   compiled ``re.Pattern`` to choose the flags. Value patterns apply after the built-in ones and
   must not match the empty string. `reset_secret_patterns()` drops them all.

Speed: `redact_value` runs on every logged param and tag value. Values under 8 characters skip
the built-in rules (too short for any token); the combined shape pattern runs only when a cheap
pre-check finds one of its trigger substrings (``@``, ``AKIA``, ``ghp_``, ``eyJ``, ``-----BEGIN``,
``Bearer``, ``sk-``, ...), the ``name=value`` scan only when the value holds ``=``, ``:`` or ``-``.
10,000 typical values ("0.1", "adam", "gini", "/data/train.csv") take about 3 ms. User value
patterns always run, so keep them anchored on a literal.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from tracked.errors import ConfigError

__all__ = [
    "REDACTED",
    "add_secret_pattern",
    "is_secret_name",
    "redact",
    "redact_value",
    "reset_secret_patterns",
    "strip_url_credentials",
    "value_rules",
]

REDACTED = "***"

# ---------------------------------------------------------------------------------------------
# By name
# ---------------------------------------------------------------------------------------------

# ACRONYM before Capitalised, Capitalised, lower, digits: "AWSSecretKey" -> AWS, Secret, Key.
_WORD_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z][a-z]*|[a-z]+")

_SECRET_PARTS = frozenset(
    {
        "password",
        "passwd",
        "passphrase",
        "pwd",
        "secret",
        "secrets",
        "credential",
        "credentials",
        "creds",
        "auth",
        "authorization",
        "cookie",
        "jwt",
        # joined forms that cannot be split
        "apikey",
        "accesskey",
        "privatekey",
        "secretkey",
        "sessionkey",
        "signingkey",
        "authtoken",
        "accesstoken",
        "refreshtoken",
        "apitoken",
        "bearertoken",
        "sessiontoken",
        "hftoken",
        "connstr",
    }
)
_SECRET_INFIXES = ("password", "passwd", "credential")
_SECRET_PAIRS = frozenset(
    {
        ("api", "key"),
        ("access", "key"),
        ("private", "key"),
        ("secret", "key"),
        ("session", "key"),
        ("signing", "key"),
        ("encryption", "key"),
        ("master", "key"),
        ("account", "key"),
        ("connection", "string"),
        ("conn", "str"),
    }
)
# "token" next to these is a tokenizer setting (pad_token, max_token, token_type_ids), not a
# credential; a real token's value is still caught by shape.
_TOKENIZER_BEFORE = frozenset(
    {
        "pad",
        "eos",
        "bos",
        "sos",
        "unk",
        "sep",
        "cls",
        "mask",
        "start",
        "end",
        "begin",
        "stop",
        "special",
        "max",
        "min",
        "num",
        "n",
        "per",
        "total",
        "first",
        "last",
        "image",
        "img",
        "vision",
        "audio",
        "video",
        "text",
        "decoder",
        "encoder",
    }
)
_TOKENIZER_AFTER = frozenset(
    {
        "id",
        "ids",
        "idx",
        "index",
        "indices",
        "len",
        "length",
        "count",
        "counts",
        "limit",
        "limits",
        "type",
        "types",
        "size",
        "budget",
        "dim",
        "emb",
        "embedding",
        "embeddings",
        "level",
        "classification",
        "num",
        "prob",
        "probs",
        "logprobs",
        "loss",
        "weight",
        "weights",
        "dropout",
        "usage",
        "vocab",
    }
)


def _is_secret_part(before: str, part: str, after: str) -> bool:
    if part == "token":
        return before not in _TOKENIZER_BEFORE and after not in _TOKENIZER_AFTER
    return (
        part in _SECRET_PARTS
        or part.endswith("secret")
        or any(infix in part for infix in _SECRET_INFIXES)
        or (part, after) in _SECRET_PAIRS
    )


@functools.lru_cache(maxsize=4096)
def _builtin_secret_name(name: str) -> bool:
    # Cached: the same few hundred param and env names come back on every run.
    parts = ["", *(p.lower() for p in _WORD_PART.findall(name)), ""]
    if any(_is_secret_part(*parts[i - 1 : i + 2]) for i in range(1, len(parts) - 1)):
        return True
    return len(parts) > 3 and parts[-2] == "pass"


def is_secret_name(name: str) -> bool:
    """Whether a param, tag or environment variable named `name` holds a secret.

    Matching is on word parts, not substrings, so ``tokenizer`` and ``max_tokens`` stay visible;
    see the module docstring for the rules. User name patterns are checked too.
    """
    if _builtin_secret_name(name):
        return True
    return any(pattern.search(name) for pattern in _name_patterns)


# ---------------------------------------------------------------------------------------------
# By shape
# ---------------------------------------------------------------------------------------------

_TOKEN68 = r"[A-Za-z0-9\-._~+/]"
# Each alternative is (pre)?(sec)(post)?: only `sec` is replaced. Group names carry an index so
# one combined pattern can hold them all; the callback finds which alternative matched.
_SHAPES: tuple[tuple[str | None, str, str | None], ...] = (
    # scheme://user:password@host: the password runs to the last "@" before the path.
    (r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:", r"[^\s/?#]+(?=@)", None),
    # scheme://TOKEN@host: a long userinfo with a digit is a token, a short one a login name.
    (
        r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://",
        r"(?=[A-Za-z0-9._~%+\-]*[0-9])[A-Za-z0-9._~%+\-]{20,}(?=@)",
        None,
    ),
    (
        r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----",
        r"[\s\S]+?",
        r"-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z",
    ),
    (
        r"\b(?:[Bb]earer|BEARER)\s+",
        rf"(?:(?={_TOKEN68}*[0-9]){_TOKEN68}{{8,}}|{_TOKEN68}{{16,}})=*",
        None,
    ),
    (None, r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])", None),
    (None, r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}", None),
    (None, r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{22,}", None),
    (None, r"(?<![A-Za-z0-9_\-])glpat-[A-Za-z0-9_\-]{20,}", None),
    (None, r"(?<![A-Za-z0-9])(?:xox[abposr]|xapp)-[A-Za-z0-9\-]{10,}", None),
    (
        None,
        r"(?<![A-Za-z0-9_\-])eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
        None,
    ),
    (
        None,
        r"(?<![A-Za-z0-9_\-])sk-(?=[A-Za-z0-9_\-]*[0-9])(?=[A-Za-z0-9_\-]*[A-Z])"
        r"[A-Za-z0-9_\-]{20,}",
        None,
    ),
    (None, r"(?<![A-Za-z0-9_\-])AIza[A-Za-z0-9_\-]{35,}", None),
    (None, r"(?<![A-Za-z0-9])(?:[sr]k_(?:live|test)|whsec)_[A-Za-z0-9]{16,}", None),
    (None, r"(?<![A-Za-z0-9_])hf_[A-Za-z0-9]{30,}", None),
    (None, r"(?<![A-Za-z0-9])dapi[0-9a-f]{32}(?:-[0-9]+)?(?![A-Za-z0-9])", None),
)


def _combine(
    shapes: tuple[tuple[str | None, str, str | None], ...],
) -> tuple[re.Pattern[str], dict[str, tuple[str | None, str | None]]]:
    """One pattern for all shapes, and for each closing group the groups to keep around it."""
    alternatives = []
    around: dict[str, tuple[str | None, str | None]] = {}
    for i, (pre, sec, post) in enumerate(shapes):
        pre_group = f"(?P<pre{i}>{pre})" if pre else ""
        post_group = f"(?P<post{i}>{post})" if post else ""
        alternatives.append(f"{pre_group}(?P<sec{i}>{sec}){post_group}")
        around[f"sec{i}"] = around[f"post{i}"] = (
            f"pre{i}" if pre else None,
            f"post{i}" if post else None,
        )
    return re.compile("|".join(alternatives)), around


_SHAPE, _SHAPE_AROUND = _combine(_SHAPES)

# `name=value`, `name: value`, `"name": "value"`, `--name value`; `name` must not follow a
# character that would make it the tail of a host, path or longer word ("https://token:x@h").
_ASSIGNMENT = re.compile(
    r"(?:(?<![A-Za-z0-9_.\-/@:])(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)[\"']?[ \t]*[=:]"
    r"|(?<![A-Za-z0-9_.\-])--?(?P<flag>[A-Za-z][A-Za-z0-9_.\-]*)(?:[ \t]*=|[ \t](?=[ \t]*[^ \t-])))"
    r"[ \t]*(?P<quote>[\"']?)(?:(?i:bearer|basic|token|digest)[ \t]+)?"
)
# An unquoted value runs to whitespace or a quote: a "," ";" or "&" ends it only when another
# assignment follows ("lr=0.1,wd=0"), since passwords may contain them ("Tr0ub4dor&3").
_ASSIGNED_VALUE = {
    "": re.compile(r"[^\s\"']+?(?=[,;&][A-Za-z_][A-Za-z0-9_.\-]*=|[\s\"']|\Z)"),
    '"': re.compile(r'[^"\n]+'),
    "'": re.compile(r"[^'\n]+"),
}

# Cheap gates: the combined shape pattern costs ~0.3 us per character, the gate a tenth of that,
# and every shape needs one of these substrings (both URL shapes need the "@").
_SHAPE_TRIGGER = re.compile(
    # The lookahead lists every first character below, so most positions fail in one test.
    r"(?=[@AgxeBbs_wdh-])(?:@|A(?:KIA|SIA|Iza)|g(?:h[pousr]_|ithub_pat_|lpat-)|x(?:ox|app-)|eyJ"
    r"|-----BEGIN|[Bb]earer|BEARER|sk-|_(?:live|test)_|whsec_|hf_|dapi)"
)
_ASSIGNMENT_TRIGGERS = ("=", ":", "-")
_MIN_SECRET_LEN = 8


def _redact_shape(match: re.Match[str]) -> str:
    # The last group to close is sec<i> or post<i> of the alternative that matched.
    pre, post = _SHAPE_AROUND[match.lastgroup or ""]
    kept = match.group(pre) if pre else ""
    if kept and len(kept) < len(match.group(0)):
        # What is kept may hold a token too ("https://ghp_...:x-oauth-basic@github.com"). Only
        # strictly shorter text recurses, so this ends.
        kept = _SHAPE.sub(_redact_shape, kept)
    return kept + REDACTED + ((match.group(post) or "") if post else "")


def _redact_assignments(text: str) -> str:
    pieces: list[str] = []
    start = pos = 0
    while (match := _ASSIGNMENT.search(text, pos)) is not None:
        pos = match.end()
        if not is_secret_name(match.group("name") or match.group("flag")):
            continue
        value = _ASSIGNED_VALUE[match.group("quote")].match(text, pos)
        if value is not None:
            pieces += (text[start:pos], REDACTED)
            start = pos = value.end()
    if not pieces:
        return text
    pieces.append(text[start:])
    return "".join(pieces)


def _redact_user(match: re.Match[str]) -> str:
    if "secret" not in match.re.groupindex:
        return REDACTED
    if match.group("secret") is None:
        return match.group(0)  # an optional secret group that did not take part: nothing to hide
    start, end = match.span("secret")
    offset = match.start()
    whole = match.group(0)
    return whole[: start - offset] + REDACTED + whole[end - offset :]


def redact_value(value: str) -> str:
    """Replace the secret-shaped parts of `value` with ``***``, keeping the rest readable.

    Returns `value` itself when nothing matches. Idempotent for the built-in rules.
    """
    text = value
    if len(text) >= _MIN_SECRET_LEN:
        if _SHAPE_TRIGGER.search(text) is not None:
            text = _SHAPE.sub(_redact_shape, text)
        if any(trigger in text for trigger in _ASSIGNMENT_TRIGGERS):
            text = _redact_assignments(text)
    for pattern in _value_patterns:
        text = pattern.sub(_redact_user, text)
    return value if text == value else text


def redact(name: str, value: str) -> str:
    """What to log for `name`=`value`: ``***`` for a secret name, else `redact_value(value)`."""
    if is_secret_name(name):
        return REDACTED
    return redact_value(value)


# ---------------------------------------------------------------------------------------------
# Git remotes
# ---------------------------------------------------------------------------------------------

# Userinfo runs to the last "@" before the path, so an unencoded "@" in a password goes too.
_URL_USERINFO = re.compile(
    r"(?<![A-Za-z0-9+.\-])(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*)://(?P<userinfo>[^\s/?#]*)@"
)


def _strip_userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group("scheme"), match.group("userinfo")
    # An https userinfo is a credential (a token, or a user git would prompt a password for); an
    # ssh login name without a password is not, and dropping it would change who connects.
    if scheme.lower() in {"http", "https"} or ":" in userinfo:
        return f"{scheme}://"
    return match.group(0)


def strip_url_credentials(url: str) -> str:
    """`url` without credentials, for git remotes: the whole userinfo of an http(s) URL goes.

    ``https://user:tok@github.com/o/r.git`` -> ``https://github.com/o/r.git``; ssh login names
    (``ssh://git@host/r``, ``git@github.com:o/r.git``) stay. Anything else secret-shaped is then
    redacted by `redact_value`.
    """
    return redact_value(_URL_USERINFO.sub(_strip_userinfo, url))


# ---------------------------------------------------------------------------------------------
# User patterns
# ---------------------------------------------------------------------------------------------

_value_patterns: tuple[re.Pattern[str], ...] = ()
_name_patterns: tuple[re.Pattern[str], ...] = ()

_COMPILE: dict[str, Callable[[str], re.Pattern[str]]] = {
    "value": re.compile,
    "name": lambda source: re.compile(source, re.IGNORECASE),
}


def value_rules() -> tuple[re.Pattern[str], ...]:
    """The value patterns added with `add_secret_pattern` now: a new tuple whenever one is added
    or they are reset, so that a cache of redacted text can tell it is out of date."""
    return _value_patterns


def add_secret_pattern(pattern: str | re.Pattern[str], *, kind: str = "value") -> None:
    """Treat what `pattern` matches as a secret, from now on, in this process.

    ``kind="value"``: matches inside values become ``***`` (only the ``secret`` group, if the
    pattern has one). ``kind="name"``: a name `pattern` finds with ``re.search`` is secret.
    """
    if kind not in _COMPILE:
        raise ConfigError("add_secret_pattern(kind=)", kind, "use 'value' or 'name'")
    compiled = pattern if isinstance(pattern, re.Pattern) else _COMPILE[kind](pattern)
    if not isinstance(compiled.pattern, str):
        raise ConfigError("add_secret_pattern(pattern=)", pattern, "use a str pattern, not bytes")
    if kind == "value" and compiled.search("") is not None:
        # It would put *** between every character of every value.
        raise ConfigError(
            "add_secret_pattern(pattern=)", compiled.pattern, "must not match the empty string"
        )
    global _value_patterns, _name_patterns
    # Rebinding a new tuple keeps concurrent readers on a consistent list without a lock.
    if kind == "value":
        _value_patterns = (*_value_patterns, compiled)
    else:
        _name_patterns = (*_name_patterns, compiled)


def reset_secret_patterns() -> None:
    """Drop every pattern added with `add_secret_pattern`; the built-in rules remain."""
    global _value_patterns, _name_patterns
    _value_patterns = ()
    _name_patterns = ()
