"""Small helpers shared by the CLI shells (settings, input lines, tables)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

import click

from jobcarbon.settings import Settings, load_settings


def settings_from(ctx: click.Context, **overrides: Any) -> Settings:
    """Settings for this invocation (``--config`` / environment), as a usage error if bad."""
    root = ctx.find_root()
    config = (root.obj or {}).get("config")
    try:
        return load_settings(config, **overrides)
    except (FileNotFoundError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc


def read_lines(stream: IO[bytes]) -> Iterator[bytes]:
    """Yield one record per line, bytes as they are (a NUL byte stays; ``\\n`` is removed).

    A final newline does not start another line; blank lines inside the file are lines.
    """
    pending = b""
    while chunk := stream.read(1 << 20):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        yield from lines
    if pending:
        yield pending


def open_input(path: str) -> IO[bytes]:
    """``-`` is standard input; anything else a file opened in binary mode."""
    if path == "-":
        return sys.stdin.buffer
    return open(path, "rb")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str = "") -> str:
    """A plain-text table; ``align`` has one of ``l``/``r`` per column (default: numbers right)."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    if not align:
        align = "".join(
            "r" if rows and isinstance(rows[0][i], int | float) else "l"
            for i in range(len(headers))
        )

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if a == "r" else v.ljust(w)
            for v, w, a in zip(values, widths, align, strict=True)
        ).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
