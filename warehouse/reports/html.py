"""One self-contained HTML file: inline SVG plots (matplotlib, Agg), tables, data quality.

No external assets (no scripts, fonts, stylesheets or images fetched): the file can be mailed
or archived as is. Every value from the inputs is HTML-escaped.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from html import escape
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from warehouse.reports.quality import QualityIssue

if TYPE_CHECKING:
    from warehouse.reports.report import Validation

J_PER_KWH = 3_600_000.0
METERED = "#1f77b4"
ATTRIBUTED = "#ff7f0e"
FLAGGED = "#d62728"
ISSUE_ORDER = (
    "gap",
    "duplicate",
    "conflicting_duplicate",
    "counter_wrap",
    "counter_reset",
    "unknown_meter",
    "unknown_job_node",
    "timezone",
    "invalid_row",
    "mapping",
    "invalid_job",
)
_CSS = """
body{font-family:DejaVu Sans,Arial,sans-serif;margin:20px;color:#222;max-width:1360px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:22px 0 8px;border-bottom:1px solid #ccc}
h3{font-size:15px;margin:14px 0 6px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ccc;border-radius:6px;padding:8px 12px;min-width:150px}
.card b{display:block;font-size:18px}
.plots{display:grid;grid-template-columns:1fr 1fr;gap:12px}
.plot{border:1px solid #ddd;padding:4px}
.plot svg{width:100%;height:auto;display:block}
table{border-collapse:collapse;font-size:12px;margin:4px 0 10px}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f0f0f0} td.l,th.l{text-align:left}
.flag{color:#b00;font-weight:bold} .note{color:#555;font-size:12px}
"""


def render_html(v: Validation, *, title: str | None = None) -> str:
    """The whole report as one HTML document."""
    title = title or "Slurm energy against machine-room meters"
    s = v.summary
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p class='note'>{escape(_window(v))}. Generated from job records and meter series; "
        "every number is joules (J) or kWh as labelled, times UTC.</p>",
        _cards(s),
        "<h2>Plots</h2><div class='plots'>",
        *(_plot(fn, v) for fn in PLOTS),
        "</div>",
        _method(v),
        "<h2>Worst nodes</h2>",
        _table(
            v.worst_nodes,
            [
                ("node", "node", str),
                ("rack", "rack", str),
                ("partition", "partition", str),
                ("flag", "flag", str),
                ("Slurm/meter", "ratio", _num(4)),
                ("bias", "bias", _pct),
                ("drift /day", "drift_per_day", _pct),
                ("drift t", "drift_t", _num(1)),
                ("idle W", "idle_power_w", _num(0)),
                ("metered kWh", "metered_j", _kwh),
                ("attributed kWh", "attributed_j", _kwh),
                ("coverage", "coverage", _share),
            ],
        ),
        "<h2>Worst jobs</h2>",
        _table(
            v.worst_jobs,
            [
                ("job", "job", str),
                ("partition", "partition", str),
                ("nodes", "nodes", _num(0)),
                ("first node", "first_node", str),
                ("reason", "reason", str),
                ("Slurm kWh", "reported_j", _kwh),
                ("metered kWh", "metered_j", _kwh),
                ("Slurm/meter", "ratio", _num(3)),
                ("error kWh", "error_j", _kwh),
            ],
        ),
        "<h2>Roll-ups</h2>",
        *(_rollup(v, by) for by in ("total", "room", "partition", "rack")),
        _jobs_section(v),
        _quality(v),
        "</body></html>",
    ]
    return "\n".join(parts)


def _window(v: Validation) -> str:
    return (
        f"Window {v.start_at:%Y-%m-%d %H:%M} to {v.end_at:%Y-%m-%d %H:%M} UTC, "
        f"{v.interval}ly intervals"
    )


def _cards(s: dict[str, Any]) -> str:
    totals, jobs, nodes, cov = s["totals"], s["jobs"], s["nodes"], s["coverage"]
    cards = [
        ("Node meters", _kwh(totals["node_metered_j"]) + " kWh"),
        ("Attributed to jobs", _kwh(totals["attributed_j"]) + " kWh"),
        ("Idle + unattributed", _kwh(totals["unattributed_j"]) + " kWh"),
        ("Facility / PUE", f"{_kwh(totals['facility_j'])} kWh / {_num(3)(totals['pue'])}"),
        ("Jobs Slurm/meter", _num(4)(jobs.get("ratio"))),
        ("Job MAPE", _share(jobs.get("mape"))),
        ("Job correlation", _num(4)(jobs.get("correlation"))),
        ("Meter coverage", _share(cov["meter_time"])),
        ("Jobs compared", f"{jobs.get('comparable', 0)} / {jobs.get('jobs', 0)}"),
        ("Flagged nodes", str(len(nodes["flagged"]))),
    ]
    items = "".join(f"<div class='card'>{escape(k)}<b>{escape(val)}</b></div>" for k, val in cards)
    return f"<div class='cards'>{items}</div>"


def _method(v: Validation) -> str:
    t = v.thresholds
    return (
        "<h2>Method</h2><p class='note'>Each job's Slurm energy is split evenly over its nodes "
        "and uniformly over its run. Per node, hourly intervals on exclusive nodes where every "
        "job reported a final energy are fitted as metered = alpha x attributed + idle power x "
        "idle seconds; Slurm/meter = 1/alpha, and letting alpha move linearly in time gives the "
        "meter's drift per day. Slurm reports one energy per job, so a node's own counter "
        "bias shows fully only through single-node jobs (the even split dilutes it over a "
        f"multi-node job's nodes). Nodes are flagged beyond |bias| {t.node_bias:.1%} or "
        f"|drift| {t.node_drift_per_day:.1%}/day (t &gt; {t.drift_t_value:g}). Jobs are "
        f"compared when exclusive, final, at least {t.min_job_s / 60:.0f} min long and metered "
        f"over {t.min_coverage:.0%} of their run; flagged beyond {t.job_ratio:.0%}.</p>"
    )


def _jobs_section(v: Validation) -> str:
    js = v.job_stats
    rows = [
        ("jobs in window", js.get("jobs", 0)),
        ("compared with meters", js.get("comparable", 0)),
        ("out of tolerance", js.get("outliers", 0)),
        ("energy incomplete (written before final)", js.get("incomplete", 0)),
        ("on shared nodes", js.get("shared", 0)),
        ("partly outside the window", js.get("outside_window", 0)),
        ("on nodes not in the mapping", js.get("on_unknown_nodes", 0)),
    ]
    rows += [(f"energy {k}", n) for k, n in sorted(js.get("by_status", {}).items())]
    body = "".join(f"<tr><td class='l'>{escape(k)}</td><td>{n:,}</td></tr>" for k, n in rows)
    head = "<tr><th class='l'>jobs</th><th>count</th></tr>"
    return f"<h2>Job energy counts</h2><table>{head}{body}</table>"


def _quality(v: Validation) -> str:
    dq = v.summary["data_quality"]
    parts = [
        "<h2 id='data-quality'>Data quality</h2>",
        f"<p class='note'>Meter rows read {dq['meter_rows_read']:,}, used "
        f"{dq['meter_rows_used']:,}. Nothing is dropped silently: every row or record not used "
        "as is appears below.</p>",
    ]
    by_kind: dict[str, list[QualityIssue]] = {}
    for issue in v.issues:
        by_kind.setdefault(issue.kind, []).append(issue)
    if not by_kind:
        parts.append("<p>No findings.</p>")
    for kind in sorted(by_kind, key=lambda k: ISSUE_ORDER.index(k) if k in ISSUE_ORDER else 99):
        issues = by_kind[kind]
        total = sum(i.count for i in issues)
        parts.append(
            f"<h3 class='dq-{escape(kind)}'>{escape(kind.replace('_', ' '))}: {total:,} "
            f"({len(issues):,} finding(s))</h3>"
        )
        rows = "".join(
            "<tr>"
            f"<td class='l'>{escape(i.subject)}</td><td>{i.count:,}</td>"
            f"<td class='l'>{_at(i.at)}</td><td class='l'>{_at(i.until)}</td>"
            f"<td>{_kwh(i.energy_j)}</td><td class='l'>{escape(i.detail)}</td></tr>"
            for i in issues[:50]
        )
        more = f"<p class='note'>... and {len(issues) - 50} more (data_quality.csv)</p>"
        parts.append(
            "<table><tr><th class='l'>subject</th><th>count</th><th class='l'>from</th>"
            "<th class='l'>until</th><th>kWh</th><th class='l'>detail</th></tr>"
            f"{rows}</table>{more if len(issues) > 50 else ''}"
        )
    return "\n".join(parts)


def _rollup(v: Validation, by: str) -> str:
    frame = v.rollups[by]
    columns: list[tuple[str, str, Callable[[Any], str]]] = [
        (by, "group", str),
        ("nodes", "nodes", _num(0)),
        ("metered kWh", "metered_j", _kwh),
        ("attributed kWh", "attributed_j", _kwh),
        ("unattributed kWh", "unattributed_j", _kwh),
        ("attributed share", "attributed_share", _share),
        ("Slurm/meter", "ratio", _num(4)),
        ("coverage", "coverage", _share),
        ("flagged", "flagged_nodes", _num(0)),
    ]
    if "pdu_j" in frame.columns:
        columns += [("PDU kWh", "pdu_j", _kwh), ("PDU/nodes", "pdu_over_nodes", _num(3))]
    if "facility_j" in frame.columns:
        columns += [("facility kWh", "facility_j", _kwh), ("PUE", "pue", _num(3))]
    return f"<h3>By {escape(by)}</h3>" + _table(frame, columns)


def _table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, Callable[[Any], str]]]) -> str:
    if frame.empty:
        return "<p class='note'>None.</p>"
    head = "".join(
        f"<th class='{'l' if fmt is str else ''}'>{escape(label)}</th>" for label, _, fmt in columns
    )
    body = []
    for row in frame.to_dict("records"):
        cells = []
        for _, name, fmt in columns:
            value = row.get(name)
            text = (
                "-"
                if value is None or (isinstance(value, float) and math.isnan(value))
                else fmt(value)
            )
            cls = "l" if fmt is str else ""
            if name == "flag" and text not in ("", "-"):
                cls += " flag"
            cells.append(f"<td class='{cls}'>{escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _kwh(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value) / J_PER_KWH:,.1f}"


def _pct(value: Any) -> str:
    """A signed deviation (bias, drift, residual)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value) * 100:+.2f} %"


def _share(value: Any) -> str:
    """A share between 0 and 1 (coverage, attributed share, MAPE)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{float(value):.1%}"


def _num(digits: int) -> Callable[[Any], str]:
    def fmt(value: Any) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "-"
        return f"{float(value):,.{digits}f}"

    return fmt


def _at(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") if value else ""


# Plots --------------------------------------------------------------------------------


def _plot(fn: Callable[[Validation, Any], str], v: Validation) -> str:
    fig, ax = plt.subplots(figsize=(6.6, 3.3), dpi=100)
    try:
        caption = fn(v, ax)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})  # reproducible output
    finally:
        plt.close(fig)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]  # drop the XML prolog and doctype
    caption_html = f"<figcaption class='note'>{escape(caption)}</figcaption>"
    return f"<figure class='plot'>{svg}{caption_html}</figure>"


def _times(seconds: np.ndarray) -> Any:
    return pd.to_datetime(seconds, unit="s", utc=True).tz_localize(None)


def _timeseries(v: Validation, ax: Any) -> str:
    iv = v.intervals
    t = _times(iv["interval_start_s"].to_numpy())
    ax.step(t, iv["metered_j"] / J_PER_KWH, where="post", color=METERED, label="node meters")
    ax.step(t, iv["attributed_j"] / J_PER_KWH, where="post", color=ATTRIBUTED, label="Slurm (jobs)")
    ax.fill_between(
        t,
        iv["attributed_j"] / J_PER_KWH,
        iv["metered_j"] / J_PER_KWH,
        step="post",
        color=METERED,
        alpha=0.15,
        label="idle + unattributed",
    )
    ax.set_ylabel(f"kWh per {v.interval}")
    ax.set_title("Metered vs attributed energy")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.legend(fontsize=7, loc="upper left")
    return "Energy per interval on metered nodes: node meters, Slurm job energy attributed to them."


def _scatter(v: Validation, ax: Any) -> str:
    n = v.nodes[v.nodes["busy_metered_j"].notna()]
    x = n["busy_metered_j"] / J_PER_KWH
    y = n["busy_attributed_j"] / J_PER_KWH
    flagged = n["flag"] != ""
    ax.scatter(x[~flagged], y[~flagged], s=10, color=METERED, label="node")
    ax.scatter(x[flagged], y[flagged], s=30, color=FLAGGED, label="flagged node")
    top = float(max(x.max(), y.max())) if len(n) else 1.0
    ax.plot([0, top], [0, top], color="#444", linewidth=1, label="identity")
    for row in n[flagged].itertuples():
        ax.annotate(
            str(row.node),
            (row.busy_metered_j / J_PER_KWH, row.busy_attributed_j / J_PER_KWH),
            fontsize=7,
        )
    ax.set_xlabel("metered kWh while busy (meter minus fitted idle)")
    ax.set_ylabel("Slurm kWh")
    ax.set_title("Per node: Slurm vs meter")
    ax.legend(fontsize=7)
    return (
        "Calibration intervals per node; points above the line: Slurm reports more than the meter."
    )


def _residuals(v: Validation, ax: Any) -> str:
    jobs = v.jobs[v.jobs["comparable"]] if not v.jobs.empty else v.jobs
    if jobs.empty:
        ax.text(0.5, 0.5, "no comparable jobs", ha="center", transform=ax.transAxes)
        return "No comparable jobs."
    rel = (jobs["ratio"].astype(float) - 1.0) * 100
    ax.hist(rel.clip(-30, 30), bins=60, color=METERED)
    ax.axvline(0, color="#444", linewidth=1)
    ax.set_xlabel("job residual: Slurm / meter - 1 (%), clipped at ±30")
    ax.set_ylabel("jobs")
    ax.set_title("Job residuals")
    return f"{len(jobs)} comparable jobs."


def _ratios(v: Validation, ax: Any) -> str:
    n = v.nodes[v.nodes["ratio"].notna()].sort_values("ratio")
    colors = [FLAGGED if f else METERED for f in (n["flag"] != "")]
    ax.bar(np.arange(len(n)), n["ratio"], width=1.0, color=colors)
    ax.axhline(1.0, color="#444", linewidth=1)
    band = v.thresholds.node_bias
    ax.axhspan(1 - band, 1 + band, color="#2ca02c", alpha=0.12)
    lo, hi = float(n["ratio"].min()) if len(n) else 0.9, float(n["ratio"].max()) if len(n) else 1.1
    ax.set_ylim(min(lo, 1 - 2 * band) - 0.01, max(hi, 1 + 2 * band) + 0.01)
    ax.set_xlabel("nodes, sorted")
    ax.set_ylabel("Slurm / meter")
    ax.set_title("Per-node ratio")
    return f"{len(n)} calibrated nodes; band: ±{band:.0%}; red: flagged."


def _coverage(v: Validation, ax: Any) -> str:
    iv = v.intervals
    t = _times(iv["interval_start_s"].to_numpy())
    ax.step(t, iv["coverage"] * 100, where="post", color=METERED, label="meter coverage")
    ax.step(
        t, iv["attributed_share"] * 100, where="post", color=ATTRIBUTED, label="attributed share"
    )
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_title("Coverage over time")
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M"))
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax.legend(fontsize=7, loc="lower left")
    return "Share of node-time with meter samples, and of metered energy attributed to jobs."


def _pue(v: Validation, ax: Any) -> str:
    rooms = v.rollups["room"]
    if "pue" not in rooms.columns:
        ax.text(0.5, 0.5, "no facility meters", ha="center", transform=ax.transAxes)
        return "No facility meters."
    ax.bar(rooms["group"].astype(str), rooms["it_j"] / J_PER_KWH, color=METERED, label="IT")
    ax.bar(
        rooms["group"].astype(str),
        (rooms["facility_j"] - rooms["it_j"]) / J_PER_KWH,
        bottom=rooms["it_j"] / J_PER_KWH,
        color=ATTRIBUTED,
        label="facility overhead",
    )
    for i, pue in enumerate(rooms["pue"]):
        if pue == pue:
            ax.text(
                i,
                float(rooms["facility_j"].iloc[i]) / J_PER_KWH,
                f"PUE {pue:.2f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_ylabel("kWh")
    ax.set_title("Facility vs IT energy per room")
    ax.legend(fontsize=7)
    return "IT: rack PDUs (node meters where a rack has none); facility: room meters."


PLOTS: tuple[Callable[[Validation, Any], str], ...] = (
    _timeseries,
    _scatter,
    _residuals,
    _ratios,
    _coverage,
    _pue,
)
