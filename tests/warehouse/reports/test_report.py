"""The written report: HTML (self-contained, escaped, data-quality section), CSV and JSON."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from warehouse.reports.jobs import job_energies_from_lines
from warehouse.reports.machine_room import MachineRoom
from warehouse.reports.report import ReportSummary, build_validation_report

START = datetime(2024, 3, 5, 20, 0, tzinfo=UTC)
EVIL = "<script>alert('x')</script>"


def at(seconds: float, tz: str = "Z") -> str:
    when = START + timedelta(seconds=seconds)
    if tz == "+01:00":
        return (when + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S") + "+01:00"
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def bad_input_meters() -> pd.DataFrame:
    rows: list[tuple[str, str, str, str, str, str]] = []
    for i in range(36):  # 3 h of 5-minute samples
        if not 12 <= i < 20:  # node a: a 45-minute gap
            rows.append((at(i * 300), "node", "a", "300", "", ""))
        rows.append((at(i * 300, "+01:00"), "node", "b", "200", "", ""))  # local offset
        rows.append((at(i * 300), "node", "ghost", "50", "", ""))  # not in the mapping
        rows.append((at(i * 300), "node", EVIL, "50", "", ""))  # hostile meter id
        rows.append((at(i * 300), "facility", "room1", "650", "", ""))
    rows.append((at(300), "node", "a", "300", "", ""))  # identical duplicate
    rows.append((at(600), "node", "a", "999", "", ""))  # conflicting duplicate
    counter = [4_294_000_000 + 150_000 * i for i in range(8)]  # wraps at 2**32 at i=7
    counter[7] -= 2**32
    counter += [counter[7] + 150_000, 1_000, 151_000]  # then a reset
    for i, value in enumerate(counter):
        rows.append((at(i * 900), "rack", "r1", "", str(value), str(2**32)))
    rows.append((at(0), "<b>pdu</b>", "r1", "5", "", ""))  # bad level
    return pd.DataFrame(
        rows, columns=["timestamp", "level", "meter_id", "power_w", "energy_j", "counter_max_j"]
    )


def job_line(job_id: int, nodes: str, start_s: float, end_s: float, energy_j: int) -> bytes:
    def iso(s: float) -> str:
        return (START + timedelta(seconds=s)).strftime("%Y-%m-%dT%H:%M:%SZ")

    return json.dumps(
        {
            "cluster": "alps",
            "job_id": job_id,
            "submit_time": iso(start_s - 60),
            "start_time": iso(start_s),
            "end_time": iso(end_s),
            "partition": "cpu",
            "nodes": nodes,
            "exclusive": True,
            "energy_j": energy_j,
            "energy_status": "measured",
            "energy_complete": True,
        }
    ).encode()


@pytest.fixture(scope="module")
def bad_report(tmp_path_factory: pytest.TempPathFactory) -> ReportSummary:
    lines = [
        job_line(1, "a,b", 1_800, 5_400, 2 * 3_600 * 100),
        job_line(2, "x9", 0, 600, 1_000),  # a node not in the mapping
        b"not json\x00\x1b[31m",  # a broken line
    ]
    jobs, issues = job_energies_from_lines(lines)
    mapping = pd.DataFrame(
        [("a", "r1", "room1"), ("b", "r1", "room1")], columns=["node", "rack", "room"]
    )
    return build_validation_report(
        jobs,
        bad_input_meters(),
        mapping,
        START,
        START + timedelta(hours=3),
        tmp_path_factory.mktemp("bad"),
        extra_issues=issues,
    )


def test_data_quality_section_lists_every_kind_of_bad_input(bad_report: ReportSummary) -> None:
    html = bad_report.html_path.read_text()
    section = html[html.index("id='data-quality'") :]
    for kind in (
        "gap",
        "duplicate",
        "conflicting_duplicate",
        "counter_wrap",
        "counter_reset",
        "unknown_meter",
        "unknown_job_node",
        "timezone",
        "invalid_row",
        "invalid_job",
    ):
        assert f"class='dq-{kind}'" in section, kind
    assert "timestamps with offset +0100 converted to UTC" in section
    counts = bad_report.summary["data_quality"]["issues"]
    assert counts["counter_wrap"] == 1 and counts["counter_reset"] == 1
    assert counts["duplicate"] == 1 and counts["conflicting_duplicate"] == 1
    assert counts["unknown_meter"] == 2 * 36  # samples of both unmapped meters, kept
    quality = pd.read_csv(bad_report.out_dir / "data_quality.csv")
    assert set(quality["kind"]) >= {"gap", "counter_wrap", "unknown_job_node", "invalid_job"}


def test_counter_energy_survives_wrap_and_reset(bad_report: ReportSummary) -> None:
    racks = pd.read_csv(bad_report.out_dir / "rollup_rack.csv").set_index("group")
    # 8 deltas of 150 kJ (one across the wrap) + 1,000 J since the reset + 150 kJ.
    assert racks.loc["r1", "pdu_j"] == pytest.approx(8 * 150_000 + 1_000 + 150_000)


def test_hostile_strings_are_escaped(bad_report: ReportSummary) -> None:
    html = bad_report.html_path.read_text()
    assert EVIL not in html and "<b>pdu</b>" not in html and "\x1b" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_html_is_self_contained(bad_report: ReportSummary) -> None:
    html = bad_report.html_path.read_text()
    assert "<script" not in html.replace("&lt;script", "")
    assert not re.search(r"<(link|img|iframe|object|embed)\b", html)
    assert not re.search(r"\bsrc\s*=", html) and "@import" not in html
    assert all(u.startswith("#") for u in re.findall(r"url\(([^)]*)\)", html))
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs and all(h.startswith("#") for h in hrefs)  # SVG-internal references only


def test_room_report_files(room: MachineRoom, room_report: ReportSummary) -> None:
    s = json.loads(room_report.json_path.read_text())
    assert s == room_report.summary | {"files": s["files"]}
    assert s["nodes"]["count"] == 376 and s["jobs"]["jobs"] > 1_000
    flagged = {f["node"] for f in s["nodes"]["flagged"]}
    assert flagged == {room.truth.biased_node, room.truth.drift_node}
    for path in room_report.csv_paths:
        assert path.stat().st_size > 0
    nodes = pd.read_csv(room_report.out_dir / "nodes.csv")
    assert len(nodes) == 376
    intervals = pd.read_csv(room_report.out_dir / "intervals.csv")
    assert intervals["interval_start_at"].iloc[0] == "2024-03-05T20:00:00Z"
    html = room_report.html_path.read_text()
    assert html.count("<svg") == 6


def test_naive_window_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        build_validation_report(
            [],
            bad_input_meters(),
            pd.DataFrame(columns=["node", "rack", "room"]),
            datetime(2024, 3, 5),
            datetime(2024, 3, 6),
            tmp_path,
        )
