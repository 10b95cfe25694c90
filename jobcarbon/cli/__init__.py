"""The ``jobcarbon`` command. Each subcommand lives in its own module and is imported only
when it runs, so ``jobcarbon sbatch`` starts fast and one broken extra never breaks the rest."""

from __future__ import annotations

import importlib
from typing import Any

import click

#: name -> (module, attribute, one-line help). Keep sorted by the data path.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "synth": ("jobcarbon.cli.synth", "synth", "Write deterministic synthetic raw jobcomp records."),
    "normalize": ("jobcarbon.cli.normalize", "normalize", "Normalize raw jobcomp records."),
    "demo": ("jobcarbon.cli.demo", "demo", "Run the pipeline on the embedded default."),
    "credit": ("jobcarbon.cli.credit", "credit", "Credit API, ledger sweep, deny cache."),
    "api": ("jobcarbon.cli.credit", "serve", "Run the credit API (same as credit serve)."),
    "sbatch": ("jobcarbon.cli.sbatch", "sbatch", "Check carbon credit, then submit with sbatch."),
    "broker": ("jobcarbon.cli.broker", "broker", "Run the embedded Kafka-compatible broker."),
    "replay": ("jobcarbon.cli.replay", "replay", "Produce raw jobcomp records to the broker."),
    "worker": ("jobcarbon.cli.worker", "worker", "Run a stream worker (ingest -> warehouse)."),
    "backfill": ("jobcarbon.cli.backfill", "backfill", "Load raw history into the warehouse."),
    "report": ("jobcarbon.cli.report", "report", "Validation report: Slurm energy vs meters."),
    "db": ("jobcarbon.cli.db", "db", "Create and migrate the warehouse schema."),
    "load": ("jobcarbon.cli.load", "load", "Load normalized records into the warehouse."),
    "jobs": ("jobcarbon.cli.jobs", "jobs", "List finished jobs with energy and CO2e."),
    "usage": ("jobcarbon.cli.usage", "usage", "Footprint totals per user or account."),
    "intensity": ("jobcarbon.cli.intensity", "intensity", "Fetch/import carbon-intensity series."),
    "recompute": ("jobcarbon.cli.recompute", "recompute", "Recompute footprints after revisions."),
    "reconcile": (
        "jobcarbon.cli.reconcile",
        "reconcile",
        "Reconcile unreconciled facts with slurmdbd (or sacct files).",
    ),
}


class LazyGroup(click.Group):
    """A click group that imports a subcommand's module only when it is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module = importlib.import_module(spec[0])
        command = getattr(module, spec[1])
        if not isinstance(command, click.Command):
            raise TypeError(f"{spec[0]}.{spec[1]} is not a click command")
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False),
    envvar="JOBCARBON_CONFIG",
    help="TOML settings file (also JOBCARBON_CONFIG).",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None) -> None:
    """jobcarbon: energy and carbon accounting for Slurm jobs."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return cli.main(args=argv, prog_name="jobcarbon")
