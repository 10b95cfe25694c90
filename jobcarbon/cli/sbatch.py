"""``jobcarbon sbatch [sbatch options] script [args]``: show the carbon summary, let the user
(s) submit, (d) submit with --begin at the greener time, (e) edit walltime/nodes and check
again, or (c) cancel; then run the real ``sbatch`` and reserve the job's predicted CO2e.

Options of this wrapper start with ``--carbon-`` and come before the sbatch options.
"""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import click
import httpx

from jobcarbon.cli.common import settings_from
from jobcarbon.credit.sbatch_args import (
    SbatchRequest,
    command,
    format_time,
    parse_sbatch,
    parse_time_s,
    rewrite,
)
from jobcarbon.settings import Settings

J_PER_KWH = 3_600_000.0


def _kg(grams: float | None) -> str:
    return "-" if grams is None else f"{grams / 1000:,.3f} kgCO2e"


def summary(check: dict[str, Any], request: SbatchRequest, now: datetime) -> str:
    """The user-history table and the job table, as text."""
    p = check["prediction"]
    rate = check.get("average_rate_g_per_kwh")
    credit = check.get("available_credit_kg")
    rows = [
        f"Your emissions (last {check['past_window_days']:g} days)",
        f"  past jobs                      {_kg(check['past_co2e_g'])}",
        f"  running/pending jobs (pred.)   {_kg(check['running_co2e_g'])}",
        f"  total incl. this job           {_kg(check['total_co2e_g'])}",
        "  available credit               "
        + ("no limit" if credit is None else f"{credit:,.3f} kgCO2e"),
        "  average CO2 rate               " + ("-" if rate is None else f"{rate:,.0f} gCO2e/kWh"),
        "",
        "This job",
        f"  submission date                {now.strftime('%Y-%m-%d %H:%M UTC')}",
        f"  walltime / nodes               {format_time(request.time_limit_s or 0)} / "
        f"{request.nodes}",
        f"  predicted energy               {p['energy_it_j'] / J_PER_KWH:,.2f} kWh "
        f"({p['energy_low_j'] / J_PER_KWH:,.2f}-{p['energy_high_j'] / J_PER_KWH:,.2f}, "
        f"from {p['level']}, {p['samples']} jobs)",
        f"  predicted CO2e                 {_kg(check['predicted_co2e_g'])} "
        f"({check['predicted_co2e_low_g'] / 1000:,.3f}-"
        f"{check['predicted_co2e_high_g'] / 1000:,.3f}) at "
        f"{check['intensity_g_per_kwh']:,.0f} g/kWh x PUE {check['pue']:.2f}",
    ]
    for eq in check["equivalents"].values():
        rows.append(f"  = {eq['value']:,.1f} {eq['label']}")
    greener = check.get("greener")
    if greener and greener.get("sbatch_begin"):
        rows.append(
            f"  greener start                  {greener['begin_at']} "
            f"(--begin={greener['sbatch_begin']}, saves {greener['co2e_saved_g']:,.0f} g)"
        )
    rows += ["", f"{check['decision'].upper()}: {check['message']}"]
    return "\n".join(rows)


class CreditClient:
    """Calls the credit API with a fresh MUNGE credential per request."""

    def __init__(self, settings: Settings, munge: str = "munge") -> None:
        self.url = settings.credit.api_url.rstrip("/")
        self.socket = settings.credit.munge_socket
        self.munge = munge

    def _credential(self) -> str:
        out = subprocess.run(
            [self.munge, "-n", "-S", self.socket], capture_output=True, text=True, check=True
        )
        return out.stdout.strip()

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = httpx.post(
            f"{self.url}{path}",
            json=body,
            headers={"X-Munge-Credential": self._credential()},
            timeout=15,
        )
        if response.status_code >= 400:
            detail = response.json().get("detail") if response.content else response.reason_phrase
            raise click.ClickException(f"credit API {response.status_code}: {detail}")
        return dict(response.json())


def _body(user: str, request: SbatchRequest, max_delay_h: float | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "user": user,
        "account": request.account,
        "partition": request.partition or "default",
        "nodes": request.nodes,
        "cpus": request.cpus,
        "gpus": request.gpus,
        "time_limit_s": request.time_limit_s,
        "job_name": request.job_name or os.path.basename(request.script or "sbatch"),
    }
    if max_delay_h is not None:
        body["max_delay_s"] = int(max_delay_h * 3600)
    return body


def _ask_choice(allowed: str) -> str:
    labels = {"s": "(s) submit", "d": "(d) submit at the greener time",
              "e": "(e) edit walltime/nodes", "c": "(c) cancel"}  # fmt: skip
    prompt = ", ".join(labels[c] for c in allowed)
    while True:
        answer = click.prompt(prompt, default="c" if "s" not in allowed else "s").strip().lower()
        if answer[:1] in allowed:
            return answer[:1]
        click.echo(f"please answer one of: {', '.join(allowed)}")


def _edit(request: SbatchRequest) -> SbatchRequest:
    while True:
        walltime = click.prompt("walltime", default=format_time(request.time_limit_s or 3600))
        try:
            seconds = parse_time_s(walltime)
            break
        except ValueError as exc:
            click.echo(str(exc))
    nodes = click.prompt("nodes", default=request.nodes, type=click.IntRange(min=1))
    return rewrite(request, time_limit_s=seconds, nodes=nodes)


def _submit(
    client: CreditClient, user: str, request: SbatchRequest, sbatch: str, reserve: bool
) -> int:
    argv = command(request, sbatch)
    click.echo("running: " + " ".join(argv), err=True)
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    match = re.search(r"(?:Submitted batch job |^)(\d+)\b", done.stdout.strip(), re.M)
    if done.returncode == 0 and match and reserve:
        try:
            body = {**_body(user, request, None), "job_id": int(match.group(1))}
            client.post("/v1/reservations", body)
        except (click.ClickException, httpx.HTTPError, subprocess.CalledProcessError) as exc:
            click.echo(f"warning: could not reserve credit for the job: {exc}", err=True)
    return done.returncode


@click.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False},
    add_help_option=False,
)
@click.option(
    "--carbon-choice",
    type=click.Choice(["ask", "s", "d", "c"]),
    default="ask",
    envvar="JOBCARBON_SBATCH_CHOICE",
    help="Non-interactive: s submit, d submit at the greener time, c cancel.",
)
@click.option("--carbon-user", default=None, help="Accounting user name (default: login).")
@click.option("--carbon-max-delay", type=float, default=None, help="Hours a job may wait.")
@click.option("--carbon-sbatch", default="sbatch", envvar="JOBCARBON_SBATCH_BIN",
              help="The real sbatch.")  # fmt: skip
@click.option("--carbon-no-reserve", is_flag=True, help="Leave reservation to cli_filter.lua.")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def sbatch(
    ctx: click.Context,
    carbon_choice: str,
    carbon_user: str | None,
    carbon_max_delay: float | None,
    carbon_sbatch: str,
    carbon_no_reserve: bool,
    argv: tuple[str, ...],
) -> None:
    """Check the job's carbon footprint and credit, then submit it with sbatch."""
    settings = settings_from(ctx)
    user = carbon_user or pwd.getpwuid(os.getuid()).pw_name
    try:
        script = parse_sbatch(list(argv)).script
        script_text = ""
        if script and os.path.isfile(script):
            with open(script, errors="replace") as fh:
                script_text = fh.read(1 << 20)
        request = parse_sbatch(list(argv), script_text)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if request.account is None:
        account = os.environ.get("SBATCH_ACCOUNT") or os.environ.get("SLURM_ACCOUNT")
        if not account:
            raise click.UsageError("give the account (-A/--account or SBATCH_ACCOUNT)")
        request = dataclasses.replace(request, account=account)
    if request.time_limit_s is None:
        raise click.UsageError("give a walltime (-t/--time): the prediction scales with it")
    client = CreditClient(settings)
    interactive = carbon_choice == "ask"
    while True:
        check = client.post("/v1/check", _body(user, request, carbon_max_delay))
        click.echo(summary(check, request, datetime.now(UTC)))
        begin = check.get("suggested_begin")
        allowed = "ec" if check["decision"] == "deny" else ("sd" if begin else "s") + "ec"
        if interactive:
            choice = _ask_choice(allowed)
        else:
            choice = "s" if carbon_choice == "d" and not begin else carbon_choice
            if choice not in allowed:
                click.echo("denied by the credit policy: not submitted", err=True)
                ctx.exit(1)
        if choice == "c":
            click.echo("cancelled: not submitted")
            ctx.exit(0)
        if choice == "e":
            request = _edit(request)
            continue
        if choice == "d":
            request = rewrite(request, begin=begin)
        ctx.exit(_submit(client, user, request, carbon_sbatch, not carbon_no_reserve))
