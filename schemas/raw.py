"""The raw ``jobcomp/kafka`` record as Slurm 23.02 to 26.05 writes it, patched or not.

``RawJobcompRecord`` is the contract: one pydantic model that accepts every documented field
(``../shared/docs/slurm-jobcomp-record.md`` §3) and quirk:

* keys left out or ``null`` (every field but ``jobid`` is optional);
* unknown keys are kept (``extra="allow"``) and travel on in ``JobRecord.extra``;
* ``"Unknown"``/``"None"``/empty timestamps (23.02 to 23.11.8 and 24.05.0) read as missing;
* NO_VAL/INFINITE sentinels of 16, 32 and 64 bits read as missing, per field width;
* the CSCS branch spellings ``tres_alloc_str`` (raw) and ``tres_fmt_alloc_str`` (formatted);
* the fields added by our patch (``slurm_patch/``): ``energy_j``, ``energy_complete``,
  ``job_db_inx``, ``submit_epoch``, ``event``, ``exclusive``.

``fast_record`` applies the same field rules without building a model, for the hot path; it
is derived from the model's own declarations and hands anything unusual back to the model
(``None``), so the model stays the single authority. Byte-level quirks (trailing NUL, json-c
``\\/``) are handled before parsing, in ``consumers.ingest``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Final, cast

import msgspec
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic.fields import FieldInfo

NO_VAL16: Final = 0xFFFE
INFINITE16: Final = 0xFFFF
NO_VAL: Final = 0xFFFFFFFE
INFINITE: Final = 0xFFFFFFFF
NO_VAL64: Final = 0xFFFFFFFFFFFFFFFE
INFINITE64: Final = 0xFFFFFFFFFFFFFFFF

_TIME_SENTINELS: Final = frozenset({"", "Unknown", "None", "unknown", "none"})
_SENTINELS_32: Final = frozenset({NO_VAL, INFINITE})
_SENTINELS_16: Final = frozenset({NO_VAL16, INFINITE16})
#: Slurm's timestamps: ``YYYY-MM-DDTHH:MM:SS`` in UTC, read with this offset appended.
_SLURM_TIME_LEN: Final = 19
_UTC_SUFFIX: Final = "+00:00"


def parse_slurm_time(value: Any) -> datetime | None:
    """Read a jobcomp timestamp (UTC ``YYYY-MM-DDTHH:MM:SS``) as an aware UTC datetime.

    ``"Unknown"``, ``"None"``, empty and null mean missing. An offset or ``Z`` is honoured;
    epoch seconds (int) are accepted, 0 and sentinels meaning missing.
    """
    if type(value) is str and len(value) == _SLURM_TIME_LEN:
        # Slurm's own form. An explicit "+00:00" parses five times faster than
        # ``.replace(tzinfo=UTC)`` and gives the same value (tzinfo is ``UTC`` itself).
        # The fast path runs this branch inline (``_emit_times``).
        try:
            return datetime.fromisoformat(value + _UTC_SUFFIX)
        except ValueError:
            return _parse_plain_utc(value)
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"timestamp {value!r} is not a date-time")
    if isinstance(value, int | float):
        if value <= 0 or value >= NO_VAL:
            return None
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str):
        raise ValueError(f"timestamp {value!r} is not a string")
    text = value.strip()
    if text in _TIME_SENTINELS:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"timestamp {value!r} is not YYYY-MM-DDTHH:MM:SS") from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _parse_plain_utc(text: str) -> datetime | None:
    # Any other 19-character form keeps its old reading. (No LRU cache: it cost more than it
    # saved, as times seldom repeat across jobs; within a record the fast path reuses them.)
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        raise ValueError(f"timestamp {text!r} is not YYYY-MM-DDTHH:MM:SS") from None


def no_val_32(value: int | None) -> int | None:
    """uint32 NO_VAL/INFINITE -> missing."""
    return None if value in _SENTINELS_32 else value


def no_val_16(value: int | None) -> int | None:
    """uint16 NO_VAL16/INFINITE16 -> missing."""
    return None if value in _SENTINELS_16 else value


# The fast path maps these values to None inline instead of calling the rule.
_SENTINEL_RULES: Final[dict[Callable[[Any], Any], frozenset[int]]] = {
    no_val_32: _SENTINELS_32,
    no_val_16: _SENTINELS_16,
}


def blank_to_none(value: Any) -> Any:
    """Empty TRES strings carry no information: treat them as missing."""
    # isspace() stops at the first other character; strip() would copy the string.
    if isinstance(value, str) and (not value or value.isspace()):
        return None
    return value


def decimal_string_to_int(value: Any) -> Any:
    """The patch sends ``job_db_inx`` as a decimal string: a 24.11+ SLUID can exceed int64."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


SlurmTime = Annotated[datetime | None, BeforeValidator(parse_slurm_time)]
# uint32/uint16 in Slurm: out-of-range values are corrupt records, not big jobs.
UInt32 = Annotated[int | None, Field(ge=0, le=INFINITE), AfterValidator(no_val_32)]
UInt16 = Annotated[int | None, Field(ge=0, le=INFINITE16), AfterValidator(no_val_16)]
UInt64 = Annotated[int | None, Field(ge=0, le=INFINITE64)]
TresText = Annotated[str | None, BeforeValidator(blank_to_none)]
# The constraint comes before the rule: listed after it, pydantic applies it to the union
# itself and raises TypeError on None instead of a validation error.
DbIndex = Annotated[int | None, Field(ge=0, le=INFINITE64), BeforeValidator(decimal_string_to_int)]


class RawJobcompRecord(BaseModel):
    """One record from ``jobcomp_common_job_record_to_data()`` (plus CSCS and jobcarbon fields)."""

    # Wire keys only: "end" is an unknown key, not "@end" (the fast path agrees). Strict:
    # Slurm writes JSON integers and strings; `"jobid": true` or `"jobid": "7"` is corrupt.
    model_config = ConfigDict(extra="allow", frozen=True, strict=True)

    jobid: int = Field(ge=1, lt=NO_VAL)
    sluid: str | None = None
    original_sluid: str | None = None
    container: str | None = None
    username: str | None = None
    user_id: UInt32 = None
    groupname: str | None = None
    group_id: UInt32 = None
    start: SlurmTime = Field(None, alias="@start")
    end: SlurmTime = Field(None, alias="@end")
    elapsed: UInt32 = None
    partition: str | None = None
    alloc_node: str | None = None
    nodes: str | None = None
    total_cpus: UInt32 = None
    total_nodes: UInt32 = None
    derived_ec: str | None = None
    exit_code: str | None = None
    state: str | None = None
    failed_node: str | None = None
    cpu_hours: float | None = None
    array_job_id: UInt32 = None
    array_task_id: UInt32 = None
    pack_job_id: UInt32 = None
    pack_job_offset: UInt32 = None
    het_job_id: UInt32 = None
    het_job_offset: UInt32 = None
    priority: UInt32 = None
    submit: SlurmTime = Field(None, alias="@submit")
    eligible: SlurmTime = Field(None, alias="@eligible")
    queue_wait: int | None = Field(None, alias="@queue_wait")
    work_dir: str | None = None
    std_err: str | None = None
    std_in: str | None = None
    std_out: str | None = None
    cluster: str | None = None
    qos: str | None = None
    ntasks: UInt32 = None
    ntasks_per_node: UInt16 = None
    ntasks_per_tres: UInt16 = None
    cpus_per_task: UInt16 = None
    orig_dependency: str | None = None
    excluded_nodes: str | None = None
    features: str | None = None
    time_limit: UInt32 = None
    job_name: str | None = None
    reservation_name: str | None = None
    wc_key: str | None = None
    tres_req_raw: TresText = None
    tres_req: TresText = None
    tres_alloc_raw: TresText = None
    tres_alloc: TresText = None
    # CSCS branch slurm-23-11-0-0rc1-cscs spellings (upstream: tres_alloc_raw / tres_alloc).
    tres_alloc_str: TresText = None
    tres_fmt_alloc_str: TresText = None
    account: str | None = None
    admin_comment: str | None = None
    comment: str | None = None
    script: str | None = None
    parent_accounts: str | None = None
    # Fields added by the jobcarbon patch series (slurm_patch/); absent upstream.
    energy_j: UInt64 = None
    energy_complete: bool | None = None
    job_db_inx: DbIndex = None
    submit_epoch: UInt32 = None
    event: str | None = None
    exclusive: bool | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _keep_python_names_as_extra(cls, data: Any, handler: Any) -> Any:
        # A wire key equal to the Python name of an aliased field ("end" for "@end") is an
        # unknown key; pydantic would silently drop it, the contract keeps it.
        if isinstance(data, dict):
            clashes = {k: data[k] for k in _ALIASED_NAMES if k in data}
            if clashes:
                model = handler({k: v for k, v in data.items() if k not in clashes})
                extra = model.__pydantic_extra__
                # In wire order, as the fast path keeps them (the JSON output is the same).
                merged = {
                    k: clashes[k] if k in clashes else extra[k]
                    for k in data
                    if k in clashes or k in extra
                }
                extra.clear()
                extra.update(merged)
                return model
        return handler(data)

    @property
    def extra_fields(self) -> dict[str, Any]:
        """Keys Slurm sent that this model does not know, kept as they came."""
        return dict(self.__pydantic_extra__ or {})

    def field_values(self) -> dict[str, Any]:
        """Every field by model name, absent ones as None (as in ``fast_record``'s struct)."""
        return {name: getattr(self, name) for name in type(self).model_fields}


_ALIASED_NAMES: Final = frozenset(
    name for name, info in RawJobcompRecord.model_fields.items() if info.alias
)

# ---------------------------------------------------------------------------------------
# The fast path: a msgspec struct generated from the model's declarations (types, aliases,
# ranges), then the model's own before/after rules. Whatever it does not settle, the model
# decides, so the model stays the single authority.

_WIRE_NAMES: Final = {
    name: (info.alias or name) for name, info in RawJobcompRecord.model_fields.items()
}
KNOWN_KEYS: Final = frozenset(_WIRE_NAMES.values())


def _struct_type(info: FieldInfo, *, no_sentinels: bool) -> Any:
    annotation = str(info.annotation)
    if "datetime" in annotation:
        return str | None  # parse_slurm_time below reads it
    base: type = (
        bool
        if "bool" in annotation
        else int
        if "int" in annotation
        else float
        if "float" in annotation
        else str
    )
    bounds: dict[str, int] = {}
    for item in info.metadata:
        for attr in ("ge", "le", "lt"):
            if getattr(item, attr, None) is not None:
                bounds[attr] = getattr(item, attr)
    if base is int and not bounds:
        bounds = {"ge": -(2**63), "le": 2**63 - 1}  # a plain int: what Avro's long holds
    sentinels = [_SENTINEL_RULES[rule] for rule in _rules(info) if rule in _SENTINEL_RULES]
    if no_sentinels and sentinels:
        bounds.pop("le", None)  # every sentinel is above the field's other values
        bounds["lt"] = min(min(group) for group in sentinels)
    # msgspec bounds must fit int64; larger ones (uint64 fields) are msgspec's own limit,
    # 2**64 - 1, which equals the model's.
    bounds = {k: v for k, v in bounds.items() if -(2**63) <= v < 2**63}
    struct_type: Any = base
    if any(
        m.func is decimal_string_to_int for m in info.metadata if isinstance(m, BeforeValidator)
    ):
        struct_type = int | str  # the rule below turns the decimal string into an int
    elif bounds:
        struct_type = Annotated[base, msgspec.Meta(**bounds)]  # type: ignore[call-overload]
    return struct_type | None


def _rules(info: FieldInfo) -> list[Callable[[Any], Any]]:
    rules: list[Callable[[Any], Any]] = []
    for item in info.metadata:
        if isinstance(item, BeforeValidator | AfterValidator):
            rules.append(item.func)  # type: ignore[arg-type]
    return rules


def _fast_struct(name: str, *, no_sentinels: bool, forbid_unknown: bool = True) -> Any:
    return msgspec.defstruct(
        name,
        # In the model's (Slurm's) key order, jobid first: msgspec tries the next field first.
        [("jobid", Annotated[int, msgspec.Meta(ge=1, lt=NO_VAL)], msgspec.NODEFAULT)]
        + [
            (name, _struct_type(info, no_sentinels=no_sentinels), None)
            for name, info in RawJobcompRecord.model_fields.items()
            if name != "jobid"
        ],
        rename=_WIRE_NAMES,
        kw_only=True,
        forbid_unknown_fields=forbid_unknown,
        gc=False,  # scalars only: nothing for the cycle collector to track
    )


_FastStruct: Final = _fast_struct("_FastStruct", no_sentinels=False)
_FAST_DECODER: Final = msgspec.json.Decoder(_FastStruct)
# The same with every NO_VAL/INFINITE sentinel out of range: Slurm leaves out most fields
# that would hold one, so almost every record decodes with it and needs no sentinel check;
# a record it refuses goes through _FastStruct.
_PlainStruct: Final = _fast_struct("_PlainStruct", no_sentinels=True)
_PLAIN_DECODER: Final = msgspec.json.Decoder(_PlainStruct)
# Records with unknown keys: the known ones into _FastStruct's fields (the unknown ones
# skipped), and every key's value as raw JSON, to read the unknown ones.
_OPEN_DECODER: Final = msgspec.json.Decoder(
    _fast_struct("_OpenStruct", no_sentinels=False, forbid_unknown=False)
)
_ITEMS_DECODER: Final = msgspec.json.Decoder(dict[str, msgspec.Raw])
_ANY_DECODER: Final = msgspec.json.Decoder()


def _rule_groups() -> list[tuple[Callable[[Any], Any], tuple[str, ...]]]:
    # Fields grouped by their chain of rules, so each chain runs over its fields in one loop.
    groups: dict[tuple[Callable[[Any], Any], ...], list[str]] = {}
    for name, info in RawJobcompRecord.model_fields.items():
        rules = tuple(_rules(info))
        if rules:
            groups.setdefault(rules, []).append(name)
    out = []
    for chain, names in groups.items():
        if len(chain) == 1:
            out.append((chain[0], tuple(names)))
        else:
            out.append((_compose(chain), tuple(names)))
    return out


def _compose(chain: tuple[Callable[[Any], Any], ...]) -> Callable[[Any], Any]:
    def composed(value: Any) -> Any:
        for rule in chain:
            value = rule(value)
        return value

    return composed


_GROUPS: Final = _rule_groups()
# Rules that change a value's type: the fast path checks what they return, since the struct
# let the looser input type through (the model's own type check comes after the rule).
_RESULT_CHECKS: Final[dict[Callable[[Any], Any], Callable[[Any], bool]]] = {
    decimal_string_to_int: lambda v: type(v) is int and 0 <= v <= INFINITE64,
}


def _emit_times(rule: str, names: tuple[str, ...]) -> list[str]:
    # parse_slurm_time, its Slurm-form branch inline; a value equal to an earlier field's
    # (submit, eligible and start often are) takes that field's result.
    lines: list[str] = []
    for k, name in enumerate(names):
        lines += [f"        v{k} = s.{name}", f"        if v{k} is not None:"]
        branch = "if"
        for j in range(k):
            lines += [f"            {branch} v{k} == v{j}:", f"                d{k} = d{j}"]
            branch = "elif"
        lines += [
            f"            {branch} len(v{k}) == {_SLURM_TIME_LEN}:",
            "                try:",
            f"                    d{k} = fromisoformat(v{k} + utc_suffix)",
            "                except ValueError:",
            f"                    d{k} = {rule}(v{k})",
            "            else:",
            f"                d{k} = {rule}(v{k})",
            f"            s.{name} = d{k}",
        ]
    return lines


def _emit_blank(rule: str, names: tuple[str, ...]) -> list[str]:
    # blank_to_none on a str field, inline.
    return [
        f"        if s.{n} is not None and (not s.{n} or s.{n}.isspace()): s.{n} = None"
        for n in names
    ]


#: Rules the generated code runs inline (the struct types these fields as ``str | None``);
#: tests/consumers/test_ingest_differential.py holds them to the rules themselves.
_INLINE_RULES: Final[dict[Callable[[Any], Any], Callable[[str, tuple[str, ...]], list[str]]]] = {
    parse_slurm_time: _emit_times,
    blank_to_none: _emit_blank,
}


def _compile_rules(*, sentinels: bool = True) -> Callable[[Any], bool]:
    """Straight-line code applying every rule group to a decoded struct in place (as
    dataclasses generate ``__init__``): a loop over the field names cost a third of the
    fast path. Generated from ``_GROUPS`` only, i.e. from the model's declarations.

    Sentinel groups: one set operation over the group's values, per field only when a
    sentinel is there. Timestamps and blank TRES strings: the rule inline, equal timestamps
    sharing one result. Other rules: a call per non-null value. False when a rule fails.
    """
    env: dict[str, Any] = {"fromisoformat": datetime.fromisoformat, "utc_suffix": _UTC_SUFFIX}
    lines = ["def apply_rules(s):"]
    for i, (rule, names) in enumerate(_GROUPS):
        group = _SENTINEL_RULES.get(rule)
        if group is None or not sentinels:
            continue
        env[f"sentinels_{i}"] = group
        values = ", ".join(f"s.{name}" for name in names)
        lines.append(f"    if not sentinels_{i}.isdisjoint(({values},)):")
        lines += [f"        if s.{name} in sentinels_{i}: s.{name} = None" for name in names]
    lines.append("    try:")
    for i, (rule, names) in enumerate(_GROUPS):
        if rule in _SENTINEL_RULES:
            continue
        env[f"rule_{i}"], env[f"check_{i}"] = rule, _RESULT_CHECKS.get(rule)
        inline = _INLINE_RULES.get(rule)
        if inline is not None:
            lines += inline(f"rule_{i}", names)
            continue
        call = [f"new = rule_{i}(v)"]
        if env[f"check_{i}"] is not None:
            call.append(f"if not check_{i}(new): return False")
        for name in names:
            lines += [f"        v = s.{name}", "        if v is not None:"]
            lines += [f"            {line}" for line in call]
            lines.append(f"            if new is not v: s.{name} = new")
    lines += ["    except ValueError:", "        return False", "    return True"]
    if not all(name.isidentifier() for _, names in _GROUPS for name in names):
        raise ImportError("model field names must be identifiers")
    exec("\n".join(lines), env)  # noqa: S102 -- source built from the model's field names
    return cast(Callable[[Any], bool], env["apply_rules"])


_apply_rules: Final = _compile_rules()
_apply_plain_rules: Final = _compile_rules(sentinels=False)  # for _PlainStruct


def fast_record(body: bytes) -> tuple[Any, dict[str, Any]] | None:
    """The record with the model's rules applied, and its unknown keys; ``None`` when only
    the model can decide (errors, lax coercions).

    The record is a msgspec struct with the model's attributes (names, types after the
    rules, absent = None): ``consumers.ingest.normalize`` reads it exactly as it reads a
    ``RawJobcompRecord``, without the cost of building one.
    """
    try:
        struct = _PLAIN_DECODER.decode(body)
    except msgspec.ValidationError as exc:
        error = str(exc)  # a sentinel, an unknown key or a bad value
    except msgspec.DecodeError:
        return None
    else:
        return (struct, {}) if _apply_plain_rules(struct) else None
    # (A failed decode costs more than a whole one: each attempt below is made only when
    # the one before says it can succeed.)
    struct = None
    if "unknown field" not in error:
        try:
            struct = _FAST_DECODER.decode(body)  # sentinels are fine here
        except msgspec.ValidationError:
            pass  # an unknown key after a sentinel, or a bad value
        except msgspec.DecodeError:
            return None
    extra: dict[str, Any] = {}
    if struct is None:
        # Unknown keys (a newer Slurm, a site patch), or a bad value: _OpenStruct differs
        # from _FastStruct only in skipping unknown keys, so if it reads the record, that
        # is what it had. The unknown ones are kept as they came; msgspec reads their values
        # exactly as the stdlib parser does (integers of any size included) or refuses them
        # (NaN, 1e400, lone surrogates: the model decides). msgspec.DecodeError is a
        # ValueError.
        try:
            struct = _OPEN_DECODER.decode(body)
            extra = {
                key: _ANY_DECODER.decode(value)
                for key, value in _ITEMS_DECODER.decode(body).items()
                if key not in KNOWN_KEYS
            }
        except (ValueError, RecursionError):
            return None
    return (struct, extra) if _apply_rules(struct) else None
