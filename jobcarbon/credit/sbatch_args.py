"""Read what an ``sbatch`` command line (and the script's ``#SBATCH`` lines) asks for, and
rewrite the options the credit check may change (walltime, nodes, begin). Pure."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from typing import Final

# sbatch options whose value the check reads: short and long spellings.
_SHORT: Final = {"-A": "account", "-p": "partition", "-N": "nodes", "-n": "ntasks",
                 "-c": "cpus_per_task", "-t": "time", "-J": "job_name", "-G": "gpus",
                 "-b": "begin"}  # fmt: skip
_LONG: Final = {"--account": "account", "--partition": "partition", "--nodes": "nodes",
                "--ntasks": "ntasks", "--cpus-per-task": "cpus_per_task", "--time": "time",
                "--job-name": "job_name", "--gpus": "gpus", "--begin": "begin"}  # fmt: skip
# sbatch options that take a value (so the script is the first word that is not one).
_VALUED_SHORT: Final = set("ABCDGJLMNSTQWabcdeiklmnopqstw")


@dataclass(frozen=True)
class SbatchRequest:
    """The job as sbatch will submit it (None: not given, Slurm's default applies)."""

    account: str | None = None
    partition: str | None = None
    nodes: int = 1
    ntasks: int = 1
    cpus_per_task: int = 1
    time_limit_s: int | None = None
    job_name: str | None = None
    gpus: int = 0
    begin: str | None = None
    options: tuple[str, ...] = ()  # the sbatch options as given
    script: str | None = None
    script_args: tuple[str, ...] = field(default_factory=tuple)

    @property
    def cpus(self) -> int:
        return max(1, self.ntasks * self.cpus_per_task)


def parse_time_s(value: str) -> int:
    """Slurm's time formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S -> seconds."""
    if not re.fullmatch(r"\s*(\d+-)?\d+(:\d+){0,2}\s*", value):
        if value.strip().lower() in ("infinite", "unlimited"):
            raise ValueError(f"--time: {value!r} has no limit to predict from")
        raise ValueError(f"--time: {value!r} is not a Slurm time")
    text = value.strip()
    if text.lower() in ("infinite", "unlimited"):
        raise ValueError(f"--time: {value!r} has no limit to predict from")
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(p) for p in text.split(":")]
        while len(parts) < 3:
            parts.append(0)
        h, m, s = parts
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            h, m, s = 0, parts[0], 0
        elif len(parts) == 2:
            h, m, s = 0, parts[0], parts[1]
        elif len(parts) == 3:
            h, m, s = parts
        else:
            raise ValueError(f"--time: {value!r} is not a Slurm time")
    total = ((days * 24 + h) * 60 + m) * 60 + s
    if total <= 0 or min(days, h, m, s) < 0:
        raise ValueError(f"--time: {value!r} is not a positive duration")
    return total


def format_time(seconds: int) -> str:
    """Seconds -> Slurm ``D-HH:MM:SS``."""
    days, rest = divmod(seconds, 86_400)
    h, rest = divmod(rest, 3_600)
    m, s = divmod(rest, 60)
    return f"{days}-{h:02d}:{m:02d}:{s:02d}" if days else f"{h:02d}:{m:02d}:{s:02d}"


def _split(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(sbatch options, script, script arguments)."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return argv[:i], (argv[i + 1] if i + 1 < len(argv) else None), argv[i + 2 :]
        if not arg.startswith("-") or arg == "-":
            return argv[:i], arg, argv[i + 1 :]
        if arg.startswith("--"):
            i += 1  # long options carry their value after "=" (or are flags)
            if "=" not in arg and arg in _LONG:
                i += 1
        else:
            i += 2 if len(arg) == 2 and arg[1] in _VALUED_SHORT else 1
    return argv, None, []


def _values(options: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    i = 0
    while i < len(options):
        arg = options[i]
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in _LONG:
                if not eq and i + 1 < len(options):
                    value = options[i + 1]
                    i += 1
                found[_LONG[name]] = value
        elif arg[:2] in _SHORT:
            if len(arg) > 2:
                found[_SHORT[arg[:2]]] = arg[2:]
            elif i + 1 < len(options):
                found[_SHORT[arg]] = options[i + 1]
                i += 1
        i += 1
    return found


_DIRECTIVE = re.compile(r"^#SBATCH\s+(.*)$")


def script_options(script_text: str) -> list[str]:
    """``#SBATCH`` options of a script (sbatch stops at the first command line)."""
    out: list[str] = []
    for line in script_text.splitlines()[1:] if script_text.startswith("#!") else []:
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            break
        match = _DIRECTIVE.match(stripped)
        if match:
            out += shlex.split(match.group(1), comments=True)
    return out


def _int(fields: dict[str, str], key: str, default: int) -> int:
    value = fields.get(key)
    if value is None:
        return default
    lead = re.match(r"\d+", value.split(":")[-1] if key == "gpus" else value)
    if not lead:
        raise ValueError(f"--{key.replace('_', '-')}: {value!r} is not a number")
    return int(lead.group(0))  # "2-4" nodes -> 2 (the minimum), "a100:4" gpus -> 4


def parse_sbatch(argv: list[str], script_text: str = "") -> SbatchRequest:
    """What ``sbatch argv`` would submit; command-line options win over ``#SBATCH`` lines."""
    options, script, args = _split(argv)
    fields = {**_values(script_options(script_text)), **_values(options)}
    return SbatchRequest(
        account=fields.get("account"),
        partition=fields.get("partition"),
        nodes=_int(fields, "nodes", 1),
        ntasks=_int(fields, "ntasks", 1),
        cpus_per_task=_int(fields, "cpus_per_task", 1),
        time_limit_s=parse_time_s(fields["time"]) if "time" in fields else None,
        job_name=fields.get("job_name"),
        gpus=_int(fields, "gpus", 0),
        begin=fields.get("begin"),
        options=tuple(options),
        script=script,
        script_args=tuple(args),
    )


def _without(options: tuple[str, ...], names: set[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for arg in options:
        if skip:
            skip = False
            continue
        long_name = arg.partition("=")[0]
        if arg.startswith("--") and _LONG.get(long_name) in names:
            skip = "=" not in arg
            continue
        if not arg.startswith("--") and _SHORT.get(arg[:2]) in names:
            skip = len(arg) == 2
            continue
        out.append(arg)
    return out


def rewrite(
    request: SbatchRequest,
    *,
    time_limit_s: int | None = None,
    nodes: int | None = None,
    begin: str | None = None,
) -> SbatchRequest:
    """The same submission with a new walltime, node count and/or begin time (command-line
    options override the script's ``#SBATCH`` lines, so appending them is enough)."""
    drop = {
        name
        for name, value in (("time", time_limit_s), ("nodes", nodes), ("begin", begin))
        if value is not None
    }
    options = _without(request.options, drop)
    if time_limit_s is not None:
        options.append(f"--time={format_time(time_limit_s)}")
    if nodes is not None:
        options.append(f"--nodes={nodes}")
    if begin is not None:
        options.append(f"--begin={begin}")
    return replace(
        request,
        options=tuple(options),
        time_limit_s=time_limit_s if time_limit_s is not None else request.time_limit_s,
        nodes=nodes if nodes is not None else request.nodes,
        begin=begin if begin is not None else request.begin,
    )


def command(request: SbatchRequest, sbatch: str = "sbatch") -> list[str]:
    """The argv that submits ``request``."""
    tail = [request.script, *request.script_args] if request.script else []
    return [sbatch, *request.options, *tail]
