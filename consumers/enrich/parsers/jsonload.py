"""Decoding JSON payloads with errors that say what was wrong."""

from __future__ import annotations

from typing import Any

import orjson

from consumers.enrich.model import SeriesError


def load_json(payload: bytes | str | dict[str, Any] | list[Any], provider: str) -> Any:
    """Decode bytes/str (already-decoded objects pass through); truncated or malformed JSON
    raises SeriesError naming the provider and the position."""
    if isinstance(payload, dict | list):
        return payload
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        snippet = payload[:80] if payload else payload
        raise SeriesError(f"{provider}: malformed JSON ({exc}); body starts {snippet!r}") from None


def field(obj: Any, key: str, where: str) -> Any:
    """``obj[key]`` of a JSON object, or SeriesError naming the missing field."""
    if not isinstance(obj, dict):
        raise SeriesError(f"{where}: expected an object, got {type(obj).__name__}")
    if key not in obj:
        raise SeriesError(f"{where}.{key}: missing")
    return obj[key]


def array(obj: Any, where: str) -> list[Any]:
    """A JSON array, or SeriesError naming where it was expected."""
    if not isinstance(obj, list):
        raise SeriesError(f"{where}: expected an array, got {type(obj).__name__}")
    return obj
