"""Versioned intensity and PUE series in the warehouse (SQLite and real PostgreSQL)."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from consumers.enrich.model import IntensityPoint, PuePoint
from warehouse.series_store import CI, read_intensity, read_pue, write_intensity, write_pue

T0 = datetime(2024, 3, 5, 20, tzinfo=UTC)
FETCH1 = datetime(2024, 3, 6, tzinfo=UTC)
FETCH2 = datetime(2024, 3, 8, tzinfo=UTC)


def pt(hour: int, value: float, fetched: datetime = FETCH1, est: bool = False) -> IntensityPoint:
    return IntensityPoint(
        provider="electricitymaps",
        zone="DE",
        signal="average",
        basis="lifecycle",
        start_at=T0 + timedelta(hours=hour),
        end_at=T0 + timedelta(hours=hour + 1),
        value_g_per_kwh=value,
        is_estimated=est,
        fetched_at=fetched,
    )


def test_revision_is_a_new_version_and_reads_are_as_of(engine: Engine) -> None:
    with engine.begin() as conn:
        first = write_intensity(conn, [pt(0, 599, est=True), pt(1, 607), pt(2, 599)], FETCH1)
    assert (first.inserted, first.revised, first.unchanged) == (3, 0, 0)
    with engine.begin() as conn:
        again = write_intensity(conn, [pt(0, 599, est=True), pt(1, 607)], FETCH1)
    assert (again.inserted, again.revised, again.unchanged) == (0, 0, 2)
    with engine.begin() as conn:
        rev = write_intensity(conn, [pt(0, 580, FETCH2), pt(1, 607, FETCH2)], FETCH2, "test")
    assert (rev.inserted, rev.revised, rev.unchanged) == (0, 1, 1)
    assert rev.revised_ranges == (
        ("electricitymaps", "DE", "average", T0, T0 + timedelta(hours=1)),
    )
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(CI)).scalar_one() == 4
        versions = conn.execute(
            select(CI.c.version, CI.c.value_g_per_kwh)
            .where(CI.c.interval_start == T0)
            .order_by(CI.c.version)
        ).all()
        assert [tuple(v) for v in versions] == [(1, 599.0), (2, 580.0)]
        now = read_intensity(conn, "electricitymaps", "DE", "average", T0, T0 + timedelta(hours=3))
        assert [p.value_g_per_kwh for p in now] == [580, 607, 599]
        assert now[0].is_estimated is False and now[0].basis == "lifecycle"
        assert now[0].start_at.tzinfo is not None
        before = read_intensity(
            conn,
            "electricitymaps",
            "DE",
            "average",
            T0,
            T0 + timedelta(hours=3),
            as_of=FETCH1 + timedelta(days=1),
        )
        assert [p.value_g_per_kwh for p in before] == [599, 607, 599]
        window = read_intensity(
            conn,
            "electricitymaps",
            "DE",
            "average",
            T0 + timedelta(minutes=90),
            T0 + timedelta(minutes=100),
        )
        assert [p.value_g_per_kwh for p in window] == [607]
        assert read_intensity(conn, "electricitymaps", "DE", "marginal", T0, FETCH2) == []


def test_adversarial_zone_strings_are_data(engine: Engine) -> None:
    zone = "DE'); DROP TABLE ts_carbon_intensity;--\x07"
    point = IntensityPoint(
        provider="csv",
        zone=zone,
        signal="average",
        basis=None,
        start_at=T0,
        end_at=T0 + timedelta(hours=1),
        value_g_per_kwh=1.0,
    )
    with engine.begin() as conn:
        write_intensity(conn, [point], FETCH1)
    with engine.connect() as conn:
        got = read_intensity(conn, "csv", zone, "average", T0, FETCH1)
    assert [(p.zone, p.basis) for p in got] == [(zone, None)]


def test_pue_write_replace_and_read(engine: Engine) -> None:
    points = [
        PuePoint(site="cscs", start_at=T0, end_at=T0 + timedelta(hours=1), pue=1.2),
        PuePoint(
            site="cscs", start_at=T0 + timedelta(hours=1), end_at=T0 + timedelta(hours=2), pue=1.3
        ),
    ]
    with engine.begin() as conn:
        write_pue(conn, points, FETCH1)
        write_pue(
            conn,
            [PuePoint(site="cscs", start_at=T0, end_at=T0 + timedelta(hours=1), pue=1.25)],
            FETCH2,
        )
    with engine.connect() as conn:
        got = read_pue(conn, "cscs", T0, T0 + timedelta(hours=2))
    assert [p.pue for p in got] == [1.25, 1.3]
