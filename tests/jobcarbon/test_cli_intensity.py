"""``jobcarbon intensity fetch|import`` into a real SQLite warehouse (and a local HTTP API)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from consumers.enrich.model import IntensityPoint
from jobcarbon.cli import cli
from tests.services.http_script import Reply, ScriptedServer
from warehouse import migrate
from warehouse.engine import make_engine
from warehouse.series_store import read_intensity

CARBON = Path(__file__).resolve().parents[1] / "data" / "carbon"


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'w.db'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def read(url: str, provider: str, zone: str) -> list[IntensityPoint]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return read_intensity(
                conn,
                provider,
                zone,
                "average",
                datetime(2000, 1, 1, tzinfo=UTC),
                datetime(2100, 1, 1, tzinfo=UTC),
            )
    finally:
        engine.dispose()


def test_import_real_rte_csv_then_a_revision(db: str, shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "rte/eco2mix-national-tr_excerpt_2025-10-04.csv"
    runner = CliRunner()
    out = runner.invoke(cli, ["intensity", "import", str(src), "--format", "rte-csv", "--db", db])
    assert out.exit_code == 0, out.output
    assert "20 new, 0 revised" in out.output
    again = runner.invoke(cli, ["intensity", "import", str(src), "--format", "rte-csv", "--db", db])
    assert "0 new, 0 revised (new version), 20 unchanged" in again.output
    # Revise the first row (01:00+02:00 = 23:00Z): 14 -> 17 g/kWh.
    lines = src.read_text("utf-8").splitlines()
    fields = lines[1].split(";")
    fields[20] = "17"
    revised = tmp_path / "revised.csv"
    revised.write_text("\n".join([lines[0], ";".join(fields)]) + "\n", "utf-8")
    rev = runner.invoke(
        cli, ["intensity", "import", str(revised), "--format", "rte-csv", "--db", db]
    )
    assert (
        "0 new, 1 revised" in rev.output and "revised rte/FR/average 2025-10-03T23:00" in rev.output
    )
    points = read(db, "rte", "FR")
    assert len(points) == 20 and points[0].value_g_per_kwh == 17


def test_import_plain_csv_rejects_and_errors(db: str, tmp_path: Path) -> None:
    f = tmp_path / "s.csv"
    f.write_text(
        "start_at,end_at,zone,intensity_g_per_kwh\n"
        "2024-01-01T00:00:00Z,2024-01-01T01:00:00Z,SE,30\n"
        "2024-01-01T01:00:00Z,2024-01-01T02:00:00Z,SE,null\n"
    )
    rejects = tmp_path / "rejects.jsonl"
    out = CliRunner().invoke(
        cli,
        [
            "intensity",
            "import",
            str(f),
            "--provider",
            "site",
            "--db",
            db,
            "--rejects",
            str(rejects),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "rejected line 3 intensity_g_per_kwh: value is null" in out.output
    assert rejects.read_text().count("\n") == 1
    assert [p.value_g_per_kwh for p in read(db, "site", "SE")] == [30]
    f.write_text("start_at,end_at,zone,intensity_g_per_kwh\n2024-01-01T00:00:00,x,SE,1\n")
    bad = CliRunner().invoke(cli, ["intensity", "import", str(f), "--db", db])
    assert bad.exit_code == 1 and "time zone" in bad.output


def test_fetch_uk_national_from_a_local_api(
    db: str, http_server: ScriptedServer, tmp_path: Path
) -> None:
    http_server.route(
        "/intensity/2018-01-20T12:00Z/2018-01-20T13:00Z",
        Reply(200, (CARBON / "ukci_national.json").read_bytes()),
    )
    config = tmp_path / "jc.toml"
    config.write_text(
        f'[carbon.providers.uk-carbon-intensity]\nbase_url = "{http_server.url}"\n'
        "backoff_s = 0.01\n"
    )
    out = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config),
            "intensity",
            "fetch",
            "--provider",
            "uk-carbon-intensity",
            "--zone",
            "GB",
            "--from",
            "2018-01-20T12:00Z",
            "--to",
            "2018-01-20T13:00Z",
            "--db",
            db,
        ],
    )
    assert out.exit_code == 0, out.output
    assert [p.value_g_per_kwh for p in read(db, "uk-carbon-intensity", "GB")] == [263, 270]


def test_fetch_reports_provider_errors(
    db: str, http_server: ScriptedServer, tmp_path: Path
) -> None:
    http_server.route("/intensity/2018-01-20T12:00Z/2018-01-20T13:00Z", Reply(503))
    config = tmp_path / "jc.toml"
    config.write_text(
        f'[carbon.providers.uk-carbon-intensity]\nbase_url = "{http_server.url}"\n'
        "backoff_s = 0.0\nmax_attempts = 2\n"
    )
    out = CliRunner().invoke(
        cli,
        [
            "--config",
            str(config),
            "intensity",
            "fetch",
            "--provider",
            "uk-carbon-intensity",
            "--zone",
            "GB",
            "--from",
            "2018-01-20T12:00Z",
            "--to",
            "2018-01-20T13:00Z",
            "--db",
            db,
        ],
    )
    assert out.exit_code == 1 and "gave up after 2 attempts" in out.output
    naive = CliRunner().invoke(
        cli,
        [
            "intensity",
            "fetch",
            "--provider",
            "rte",
            "--zone",
            "FR",
            "--from",
            "2018-01-20T12:00",
            "--to",
            "2018-01-21",
        ],
    )
    assert naive.exit_code == 2 and "no time zone" in naive.output


def test_parse_time_forms() -> None:
    import click

    from jobcarbon.cli.intensity import parse_time

    now = datetime(2025, 1, 2, 12, tzinfo=UTC)
    assert parse_time("now", "--to", now) == now
    assert parse_time("now-48h", "--from", now) == datetime(2024, 12, 31, 12, tzinfo=UTC)
    assert parse_time("NOW - 30m", "--from", now) == datetime(2025, 1, 2, 11, 30, tzinfo=UTC)
    assert parse_time("2025-01-01", "--from") == datetime(2025, 1, 1, tzinfo=UTC)
    assert parse_time("2025-01-01T02:00+02:00", "--from") == datetime(2025, 1, 1, tzinfo=UTC)
    for bad in ("yesterday", "now+1h", "2025-01-01T00:00", "'; DROP TABLE x;--"):
        with pytest.raises(click.BadParameter):
            parse_time(bad, "--from", now)


@pytest.mark.broker
def test_import_publishes_to_grid_intensity(
    db: str, kafka_env: dict[str, str], shared_data: Path
) -> None:
    """--publish puts every point on grid.intensity, keyed by series, in the format the
    workers' local state reads (decode_point)."""
    from consumers.enrich.codec import decode_point
    from consumers.kafka.reader import read_topic
    from jobcarbon.settings import KafkaSettings

    history = (
        shared_data / "electricitymaps" / "aioelectricitymaps_carbon_intensity_history_DE.json"
    )
    result = CliRunner(env=kafka_env).invoke(
        cli,
        [
            "intensity",
            "import",
            str(history),
            "--format",
            "electricitymaps",
            "--db",
            db,
            "--publish",
        ],
    )
    assert result.exit_code == 0, result.output
    kafka = KafkaSettings(
        bootstrap_servers=kafka_env["JOBCARBON_KAFKA__BOOTSTRAP_SERVERS"],
        topic_intensity=kafka_env["JOBCARBON_KAFKA__TOPIC_INTENSITY"],
    )
    records = read_topic(kafka, kafka.topic_intensity, expect=24, timeout_s=20)
    points = [decode_point(r.value) for r in records if r.value is not None]
    stored = read(db, "electricitymaps", "DE")
    assert len(points) == 24 and sorted(p.start_at for p in points) == sorted(
        p.start_at for p in stored
    )
    assert {r.key for r in records} == {b"electricitymaps:DE:average"}
