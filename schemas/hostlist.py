"""Slurm hostlist expressions: ``nid[001-004,007],login1`` <-> node names."""

from __future__ import annotations

import re
from collections.abc import Iterable

_NUMBERED = re.compile(r"^(.*?)(\d+)$")
MAX_HOSTS = 1_000_000  # a guard against "n[0-999999999]" in adversarial input


class HostlistError(ValueError):
    """A hostlist expression that cannot be expanded; the message quotes it."""


def _split_top(expr: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for ch in expr:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise HostlistError(f"unbalanced ']' in hostlist {expr!r}")
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise HostlistError(f"unbalanced '[' in hostlist {expr!r}")
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def expand_hostlist(expr: str | None) -> list[str]:
    """Expand a hostlist expression into node names, in order (one bracket level per name)."""
    if not expr:
        return []
    hosts: list[str] = []
    for part in _split_top(expr):
        if "[" not in part:
            hosts.append(part)
            continue
        head, _, rest = part.partition("[")
        ranges, _, tail = rest.partition("]")
        if "[" in tail or "]" in tail:
            raise HostlistError(f"nested or repeated brackets in hostlist {expr!r}")
        for item in ranges.split(","):
            lo, sep, hi = item.strip().partition("-")
            if not lo.isdigit() or (sep and not hi.isdigit()):
                raise HostlistError(f"range {item!r} in hostlist {expr!r} is not N or N-M")
            width = len(lo)
            start, stop = int(lo), int(hi) if sep else int(lo)
            if stop < start:
                raise HostlistError(f"range {item!r} in hostlist {expr!r} runs backwards")
            if len(hosts) + (stop - start + 1) > MAX_HOSTS:
                raise HostlistError(f"hostlist {expr[:80]!r} expands to over {MAX_HOSTS} hosts")
            hosts.extend(f"{head}{n:0{width}d}{tail}" for n in range(start, stop + 1))
    return hosts


def compress_hostlist(hosts: Iterable[str]) -> str:
    """Compress node names into a hostlist expression (``cn[001-003,007]``), Slurm-style."""
    groups: dict[tuple[str, int], list[int]] = {}
    order: list[tuple[str, int] | str] = []
    for host in hosts:
        match = _NUMBERED.match(host)
        if match is None:
            order.append(host)
            continue
        prefix, digits = match.groups()
        key = (prefix, len(digits))
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(int(digits))
    out = []
    for item in order:
        if isinstance(item, str):
            out.append(item)
            continue
        prefix, width = item
        numbers = sorted(set(groups[item]))
        if len(numbers) == 1:
            out.append(f"{prefix}{numbers[0]:0{width}d}")
            continue
        spans, lo, prev = [], numbers[0], numbers[0]
        for n in [*numbers[1:], None]:
            if n is not None and n == prev + 1:
                prev = n
                continue
            spans.append(f"{lo:0{width}d}" if lo == prev else f"{lo:0{width}d}-{prev:0{width}d}")
            if n is not None:
                lo = prev = n
        out.append(f"{prefix}[{','.join(spans)}]")
    return ",".join(out)
