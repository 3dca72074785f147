"""JSON that a person wrote (scenario files, ``check --action``, edited args): read strictly."""

from __future__ import annotations

import json
from typing import Any


def loads(text: str) -> Any:
    """``json.loads``, except that a key given twice in one object, and nesting too deep to read, raise
    ``ValueError`` like any other syntax error: silently keeping the later key could run args nobody meant, and
    a ``RecursionError`` would crash the caller instead of naming the input."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("nested too deeply to read (simplify the JSON)") from None


def describe(exc: ValueError) -> str:
    """What is wrong, with the line and column when the parser knows them."""
    if isinstance(exc, json.JSONDecodeError):
        return f"line {exc.lineno} column {exc.colno}: {exc.msg}"
    return str(exc)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {json.dumps(key)} is given twice in one object (give it once)")
        out[key] = value
    return out
