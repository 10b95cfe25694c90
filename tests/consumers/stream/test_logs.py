"""Structured logs: one JSON object per line, extra fields kept, exceptions included."""

from __future__ import annotations

import io
import logging
import logging.config

import orjson

from consumers.stream.logs import logging_config


def test_records_are_json_lines_with_extra_fields_and_exceptions() -> None:
    stream = io.StringIO()
    config = logging_config("info")
    config["handlers"]["json"]["stream"] = stream
    config["disable_existing_loggers"] = False
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        logging.config.dictConfig(config)
        log = logging.getLogger("jobcarbon.test")
        log.warning("dead-lettered", extra={"reason": "invalid_json", "detail": "a\nb\x00"})
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed")
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    first, second = (orjson.loads(line) for line in stream.getvalue().splitlines())
    assert first["level"] == "warning" and first["message"] == "dead-lettered"
    assert first["reason"] == "invalid_json" and first["detail"] == "a\nb\x00"
    assert first["at"].endswith("+00:00")
    assert "ValueError: boom" in second["exc"]
