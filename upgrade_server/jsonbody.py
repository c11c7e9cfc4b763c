"""Request bodies as JSON, parsed strictly: only what every store can hold.

`json.loads` alone accepts what later breaks the server: NaN and Infinity
(not JSON, and PostgreSQL's jsonb refuses them; 1e999 reads as infinity),
unpaired surrogates such as "\\ud800" (no encoder can write them, so the
database or the response fails),
NUL characters (PostgreSQL's text refuses them; SQLite would keep them) and
nesting deep enough to exhaust the interpreter's stack. Each is refused here
with a ValueError saying why, which every caller turns into a 400 problem.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

# Deeper than any document this API takes, far below the interpreter's limit.
MAX_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class JSONBodyError(ValueError):
    """The body is not JSON this server takes; the message says why."""


def _refuse_constant(name: str) -> Any:
    raise JSONBodyError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONBodyError(f"{text} is past the range of a number")
    return value


def unstorable_text(value: str) -> str | None:
    """Why a string cannot be stored, or None when it can."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    if found.group() == "\x00":
        return "text may not contain NUL characters"
    return "text may not contain unpaired UTF-16 surrogates"


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, parse_float=_finite_float)


def loads(data: str | bytes) -> Any:
    """Parse a request body; raises JSONBodyError (a ValueError) when it is not
    JSON, or holds NaN/Infinity, unstorable text or nesting past MAX_DEPTH."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = _DECODER.decode(text)
    except RecursionError as exc:
        raise JSONBodyError(f"nested deeper than {MAX_DEPTH} levels") from exc
    except UnicodeDecodeError as exc:
        raise JSONBodyError("the body is not UTF-8") from exc
    # NUL and surrogates can only come from \u escapes (the decoder refuses raw
    # control characters; strict UTF-8 has no surrogates), and a body with few
    # brackets cannot nest deeply: most bodies (every update check) need no walk.
    if "\\u" in text or text.count("[") + text.count("{") > MAX_DEPTH:
        _check(value)
    return value


def _check(document: Any) -> None:
    # Iterative, so a document that parsed cannot exhaust the stack here either.
    pending: list[tuple[Any, int]] = [(document, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            reason = unstorable_text(value)
            if reason:
                raise JSONBodyError(reason)
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise JSONBodyError(f"nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                pending.extend((key, depth) for key in value)
                pending.extend((item, depth + 1) for item in value.values())
            else:
                pending.extend((item, depth + 1) for item in value)
