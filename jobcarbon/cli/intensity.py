"""``jobcarbon intensity fetch|import``: provider series into the warehouse (versioned).

Thin shell: the clients fetch, the parsers parse, ``warehouse.series_store`` versions and
stores. Rejected values (null, ``ND``, out of range) are listed on stderr and, with
``--rejects FILE``, written as JSON lines; they are never stored as zeros.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import orjson

from consumers.enrich.model import IntensityPoint, Parsed, PuePoint, Rejected, SeriesError
from jobcarbon.cli.common import settings_from
from jobcarbon.cli.db import DB_OPTION, warehouse_url
from jobcarbon.settings import Settings

IMPORT_FORMATS = (
    "csv",
    "pue-csv",
    "electricitymaps",
    "uk-carbon-intensity",
    "rte-json",
    "rte-csv",
    "watttime-json",
    "watttime-csv",
)


RELATIVE = re.compile(r"^now(?:\s*-\s*(\d+)\s*([smhd]))?$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str, option: str, now: datetime | None = None) -> datetime:
    """``--from/--to``: ISO 8601 with a zone, a bare date (UTC midnight), ``now`` or
    ``now-<n><s|m|h|d>`` (for timers: ``--from now-48h --to now``)."""
    relative = RELATIVE.match(value.strip().lower())
    if relative:
        base = now or datetime.now(UTC)
        amount, unit = relative.groups()
        return base - timedelta(seconds=int(amount) * UNIT_S[unit]) if amount else base
    text = value.strip().replace("z", "Z")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=option) from None
    if parsed.tzinfo is None:
        if len(text) == 10:  # a date
            return parsed.replace(tzinfo=UTC)
        raise click.BadParameter(
            f"{value!r} has no time zone (add Z or an offset)", param_hint=option
        )
    return parsed.astimezone(UTC)


@click.group()
def intensity() -> None:
    """Fetch and import carbon-intensity (and PUE) time series."""


@intensity.command()
@click.option(
    "--provider", required=True, help="electricitymaps, uk-carbon-intensity, rte, watttime"
)
@click.option("--zone", required=True, help="Zone or region (DE, GB, GB-R13, FR, CAISO_NORTH...).")
@click.option("--from", "start", required=True, help="Start (ISO 8601 with zone, or a date).")
@click.option("--to", "end", required=True, help="End, exclusive.")
@DB_OPTION
@click.option("--rejects", type=click.Path(dir_okay=False), help="Write rejected values here.")
@click.option("--no-store", is_flag=True, help="Print the points, do not write the warehouse.")
@click.option(
    "--publish",
    is_flag=True,
    help="Also publish the points to the grid.intensity topic (PUE to facility.power), "
    "where the stream workers' local state picks them up.",
)
@click.pass_context
def fetch(
    ctx: click.Context,
    provider: str,
    zone: str,
    start: str,
    end: str,
    db_url: str | None,
    rejects: str | None,
    no_store: bool,
    publish: bool,
) -> None:
    """Fetch PROVIDER's series for ZONE over [--from, --to) and store it (versioned)."""
    from consumers.enrich.clients import PROVIDERS, fetch_series
    from consumers.enrich.http import ProviderError

    if provider not in PROVIDERS:
        raise click.BadParameter(f"one of {', '.join(PROVIDERS)}", param_hint="--provider")
    settings = settings_from(ctx)
    now = datetime.now(UTC)
    t0, t1 = parse_time(start, "--from", now), parse_time(end, "--to", now)
    if t1 <= t0:
        raise click.BadParameter("must be after --from", param_hint="--to")
    try:
        parsed = fetch_series(
            provider, zone, t0, t1, settings.carbon.provider(provider), lambda: datetime.now(UTC)
        )
    except (ProviderError, SeriesError) as exc:
        raise click.ClickException(str(exc)) from exc
    _report_rejects(parsed.rejected, rejects)
    if publish:
        _publish(settings, parsed.points, [])
    if no_store:
        for p in parsed.points:
            click.echo(f"{p.start_at.isoformat()} {p.end_at.isoformat()} {p.value_g_per_kwh:g}")
        return
    _store(warehouse_url(ctx, db_url), parsed.points, [], f"api:{provider}")


@intensity.command(name="import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format", "fmt", type=click.Choice(IMPORT_FORMATS), default="csv", show_default=True
)
@click.option("--zone", help="Zone for formats that do not carry it (watttime-csv).")
@click.option("--provider", default="csv", show_default=True, help="Provider name (csv).")
@DB_OPTION
@click.option("--rejects", type=click.Path(dir_okay=False), help="Write rejected values here.")
@click.option(
    "--publish",
    is_flag=True,
    help="Also publish the points to the grid.intensity topic (PUE to facility.power), "
    "where the stream workers' local state picks them up.",
)
@click.pass_context
def import_(
    ctx: click.Context,
    file: str,
    fmt: str,
    zone: str | None,
    provider: str,
    db_url: str | None,
    rejects: str | None,
    publish: bool,
) -> None:
    """Import a series FILE (provider reply or the plain CSV formats) into the warehouse."""
    data = Path(file).read_bytes()
    now = datetime.now(UTC)
    pue: list[PuePoint] = []
    try:
        if fmt == "pue-csv":
            from consumers.enrich.parsers.plain_csv import parse_pue

            pue, rejected = parse_pue(_text(data))
            parsed = Parsed((), tuple(rejected))
        else:
            parsed = _parse(fmt, data, zone, provider, now)
    except SeriesError as exc:
        raise click.ClickException(f"{file}: {exc}") from exc
    _report_rejects(parsed.rejected, rejects)
    if publish:
        _publish(settings_from(ctx), parsed.points, pue)
    _store(warehouse_url(ctx, db_url), parsed.points, pue, f"file:{Path(file).name}")


def _parse(fmt: str, data: bytes, zone: str | None, provider: str, now: datetime) -> Parsed:
    from consumers.enrich.parsers import electricitymaps, plain_csv, rte, ukci, watttime

    if fmt == "csv":
        return plain_csv.parse_intensity(_text(data), now, provider)
    if fmt == "electricitymaps":
        return electricitymaps.parse(data, now)
    if fmt == "uk-carbon-intensity":
        return ukci.parse(data, now)
    if fmt == "rte-json":
        return rte.parse_json(data, now)
    if fmt == "rte-csv":
        return rte.parse_csv(data, now)
    if fmt == "watttime-json":
        return watttime.parse_json(data, now)
    if not zone:
        raise click.UsageError("--zone is required for watttime-csv (the file has no region)")
    return watttime.parse_csv(_text(data), zone, now)


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SeriesError(f"not UTF-8 text ({exc})") from None


def _report_rejects(rejected: Sequence[Rejected], path: str | None) -> None:
    for r in rejected[:20]:
        click.echo(f"rejected {r.where}: {r.reason}", err=True)
    if len(rejected) > 20:
        click.echo(f"... and {len(rejected) - 20} more rejected value(s)", err=True)
    if path is not None:
        with open(path, "wb") as out:
            for r in rejected:
                out.write(orjson.dumps({"where": r.where, "reason": r.reason}) + b"\n")


def _publish(settings: Settings, points: Sequence[IntensityPoint], pue: Sequence[PuePoint]) -> None:
    """Produce the points (keyed by series) and wait for every delivery."""
    from consumers.enrich.codec import encode_point, intensity_key
    from consumers.kafka.admin import ensure_topics
    from consumers.kafka.producer import DeliveryError, KafkaClientError, Producer

    kafka = settings.kafka
    try:
        ensure_topics(kafka, [kafka.topic_intensity, kafka.topic_power])
        producer = Producer(kafka)
        for point in points:
            producer.produce(kafka.topic_intensity, encode_point(point), key=intensity_key(point))
        for pue_point in pue:
            producer.produce(
                kafka.topic_power, encode_point(pue_point), key=pue_point.site.encode()
            )
        report = producer.flush()
    except (DeliveryError, KafkaClientError) as exc:
        raise click.ClickException(f"publishing to {kafka.bootstrap_servers}: {exc}") from exc
    click.echo(
        f"published {report.delivered} point(s) to {kafka.topic_intensity}"
        + (f" and {kafka.topic_power}" if pue else ""),
        err=True,
    )


def _store(
    url: str, points: Sequence[IntensityPoint], pue: Sequence[PuePoint], source: str
) -> None:
    from warehouse.engine import make_engine
    from warehouse.series_store import write_intensity, write_pue

    engine = make_engine(url)
    now = datetime.now(UTC)
    try:
        with engine.begin() as conn:
            result = write_intensity(conn, points, now, source)
            stored_pue = write_pue(conn, pue, now) if pue else 0
    finally:
        engine.dispose()
    click.echo(
        f"intensity: {result.inserted} new, {result.revised} revised (new version), "
        f"{result.unchanged} unchanged" + (f"; PUE: {stored_pue} interval(s)" if pue else ""),
        err=True,
    )
    for provider, zone, signal, start, end in result.revised_ranges[:20]:
        click.echo(
            f"revised {provider}/{zone}/{signal} {start.isoformat()}..{end.isoformat()}", err=True
        )
