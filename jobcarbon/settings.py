"""One settings model for every shell: CLI, workers, API, batch paths.

Read from (highest first): explicit overrides, environment variables ``JOBCARBON_*`` (nested
with ``__``, e.g. ``JOBCARBON_KAFKA__BOOTSTRAP_SERVERS``), a TOML file (``--config FILE`` or
``JOBCARBON_CONFIG``), then the defaults below, which are the embedded default (local broker,
SQLite warehouse). See ``docs/configuration.md`` for every key.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CONFIG_ENV = "JOBCARBON_CONFIG"


class KafkaSettings(BaseModel):
    """Broker, topics and the consumer group."""

    bootstrap_servers: str = "127.0.0.1:9092"
    topic_jobcomp: str = "slurm.jobcomp"
    topic_normalized: str = "jobs.normalized"
    topic_dlq: str = "slurm.jobcomp.dlq"
    topic_intensity: str = "grid.intensity"
    topic_power: str = "facility.power"
    partitions: int = Field(4, ge=1)
    replication_factor: int = Field(1, ge=1)
    consumer_group: str = "jobcarbon"
    #: Extra librdkafka properties (``security.protocol``, ``sasl.*``, ...).
    client_properties: dict[str, str] = {}
    #: Stream workers (faust): group timeouts short enough to join in seconds.
    session_timeout_s: float = Field(6.0, gt=0)
    heartbeat_interval_s: float = Field(1.0, gt=0)
    commit_interval_s: float = Field(1.0, gt=0)
    #: The workers' hot path takes a batch of this many records, or what arrived within
    #: ``sink_batch_within_s`` (so latency stays low at low rates). 2000: with the
    #: columnar sink, bench.stream measured 11.6k records/s and 239 MB at 1000, 14.1k/s and
    #: 255-260 MB at 2000, 13.1k/s and 292-297 MB at 4000 (two batches are in flight).
    sink_batch_max: int = Field(2000, ge=1)
    sink_batch_within_s: float = Field(0.5, gt=0)
    #: Workers also publish each normalized record (Avro) to ``topic_normalized`` for other
    #: consumers. Off by default: the warehouse path does not read it back, and the Avro
    #: encoding costs about as much CPU as normalizing (docs/stream.md).
    publish_normalized: bool = False
    #: Larger jobcomp records are dead-lettered as ``oversized`` (original bytes kept);
    #: the broker's and clients' message size limits (1 MB by default) apply before this.
    max_record_bytes: int = Field(8 * 1024 * 1024, ge=1)
    #: The worker's HTTP port (Prometheus ``/metrics``); 0 picks a free port.
    worker_web_port: int = Field(6066, ge=0, le=65535)


class WarehouseSettings(BaseModel):
    """The SQL warehouse (SQLAlchemy URL). SQLite is the embedded default."""

    url: str = "sqlite:///jobcarbon.db"
    batch_size: int = Field(500, ge=1)


class AccountingSettings(BaseModel):
    """The slurmdbd database (read-only) used to reconcile records."""

    url: str | None = None  # e.g. mysql+pymysql://reader:secret@dbd-host/slurm_acct_db
    settle_seconds: float = Field(600.0, ge=0)
    #: Connect timeout (reads get 3x): an outage fails fast and lands facts as unreconciled.
    timeout_s: float = Field(10.0, gt=0)
    #: Retry delays while a job is not in slurmdbd yet: base x 2^(n-1), capped.
    backoff_base_s: float = Field(5.0, gt=0)
    backoff_cap_s: float = Field(300.0, gt=0)


class ClusterSettings(BaseModel):
    """Where a cluster's energy comes from: its grid zone and its data-centre site."""

    zone: str = "WORLD"
    site: str = "default"


class SiteSettings(BaseModel):
    """A data-centre site: static PUE (with its source) unless measured PUE arrives."""

    pue: float = Field(1.56, ge=1.0)
    pue_source: str = "Green Algorithms v3.0 default (Uptime Institute 2024)"


class SeriesSettings(BaseModel):
    """One intensity series estimated for every job of a zone: a provider and a signal."""

    provider: str = "electricitymaps"
    signal: Literal["average", "marginal"] = "average"


class ProviderSettings(BaseModel):
    """How to reach one provider's API (tokens never appear in logs or errors)."""

    base_url: str | None = None  # None: the provider's documented public URL
    token: SecretStr | None = None  # Electricity Maps ``auth-token``
    username: str | None = None  # WattTime login (HTTP Basic -> bearer token)
    password: SecretStr | None = None
    timeout_s: float = Field(30.0, gt=0)
    max_attempts: int = Field(4, ge=1, le=10)
    backoff_s: float = Field(1.0, ge=0)


class TariffPeriod(BaseModel):
    """A time-of-use price: ``[start_hour, end_hour)`` local hours of the site."""

    start_hour: int = Field(0, ge=0, le=23)
    end_hour: int = Field(24, ge=1, le=24)
    price_per_kwh: float = Field(ge=0)


class TariffSettings(BaseModel):
    """Electricity price of a site (facility energy), by local hour."""

    name: str = "flat"
    currency: str = "EUR"
    timezone: str = "UTC"
    periods: list[TariffPeriod] = []


class CarbonSettings(BaseModel):
    """Carbon-intensity defaults and the cluster -> zone/site mapping."""

    clusters: dict[str, ClusterSettings] = {}
    sites: dict[str, SiteSettings] = {"default": SiteSettings()}
    #: Last-resort intensity when no series and no annual value cover a job.
    default_intensity_g_per_kwh: float = Field(475.0, gt=0)
    default_intensity_source: str = "IEA Global Energy & CO2 Status Report 2019 world average"
    #: Series estimated per zone (first average one is the accounting series).
    zone_series: dict[str, list[SeriesSettings]] = {}
    #: Series for zones not in ``zone_series``.
    default_series: list[SeriesSettings] = [SeriesSettings()]
    #: Gaps are filled with the nearest point no further than this (0 disables it).
    nearest_limit_s: float = Field(7200.0, ge=0)
    #: zone -> key of its annual average in the annual table (e.g. ``FR`` -> ``FRA`` in OWID).
    annual_zones: dict[str, str] = {}
    #: Static per-zone factors in g/kWh (provider ``static``), e.g. a contract's value.
    static_factors: dict[str, float] = {}
    providers: dict[str, ProviderSettings] = {}
    #: site -> tariff, for a cost per job.
    tariffs: dict[str, TariffSettings] = {}

    def series(self, zone: str) -> list[SeriesSettings]:
        """The series estimated for a zone."""
        return self.zone_series.get(zone, self.default_series)

    def provider(self, name: str) -> ProviderSettings:
        """Settings of one provider, or the defaults."""
        return self.providers.get(name, ProviderSettings())

    def cluster(self, name: str | None) -> ClusterSettings:
        """Settings of one cluster, or the defaults when it is not configured."""
        found = self.clusters.get(name or "")
        return found if found is not None else ClusterSettings()

    def site(self, name: str) -> SiteSettings:
        """Settings of one site, or the default site."""
        return self.sites.get(name) or self.sites.get("default") or SiteSettings()


class CreditSettings(BaseModel):
    """The submission-time credit check: policy, API, authentication (docs/credit.md)."""

    #: The policy TOML (None: no allocations, the check only informs).
    policy_file: str | None = None
    #: Where ``jobcarbon sbatch`` and the Lua plugins reach the API.
    api_url: str = "http://127.0.0.1:8470"
    host: str = "127.0.0.1"
    port: int = Field(8470, ge=1, le=65535)
    #: munged's socket the API decodes user credentials with.
    munge_socket: str = "/run/munge/munge.socket.2"
    #: Admin bearer token (None disables the admin endpoints).
    admin_token: SecretStr | None = None
    #: user name -> uid where the API host has no passwd entry for users.
    user_uids: dict[str, int] = {}
    #: Cluster assumed when a request names none.
    cluster: str = "cluster"
    #: Reservations neither settled nor released after this long are released.
    stale_reservation_hours: float = Field(168.0, gt=0)
    #: Largest request body accepted (bytes).
    max_request_bytes: int = Field(16_384, ge=256)
    #: JSON forecast ``[{"start_at", "end_at", "intensity_g_per_kwh"}, ...]`` (optional).
    forecast_file: str | None = None
    #: Cached deny list the controller-side job_submit.lua reads.
    deny_list_file: str = "/etc/slurm/jobcarbon-deny.txt"
    #: Answer checks from in-process state (roll-ups, open ledger, history index) refreshed
    #: in the background (docs/credit.md, "Staleness"); False: query the warehouse per check.
    in_process_state: bool = True
    #: Reload roll-ups and the ledger this often (bound on facts landing -> usage).
    state_refresh_s: float = Field(30.0, gt=0)
    #: Reload the prediction history index this often.
    history_refresh_s: float = Field(300.0, gt=0)
    #: Read ledger entries written outside this server this often.
    ledger_poll_s: float = Field(1.0, gt=0)


class Settings(BaseSettings):
    """Everything configurable in jobcarbon."""

    model_config = SettingsConfigDict(
        env_prefix="JOBCARBON_", env_nested_delimiter="__", extra="forbid"
    )

    #: Cluster name for records that carry none (no accounting); Slurm's topic default.
    default_cluster: str | None = None
    kafka: KafkaSettings = KafkaSettings()
    warehouse: WarehouseSettings = WarehouseSettings()
    accounting: AccountingSettings = AccountingSettings()
    carbon: CarbonSettings = CarbonSettings()
    credit: CreditSettings = CreditSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(path)))
        return tuple(sources)


def load_settings(config: Path | str | None = None, **overrides: Any) -> Settings:
    """Load settings from the environment and an optional TOML file (``config`` wins over
    ``JOBCARBON_CONFIG``). Raises FileNotFoundError for a missing file."""
    if config is not None:
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"configuration file {str(path)!r} does not exist")
        previous = os.environ.get(CONFIG_ENV)
        os.environ[CONFIG_ENV] = str(path)
        try:
            return Settings(**overrides)
        finally:
            if previous is None:
                os.environ.pop(CONFIG_ENV, None)
            else:
                os.environ[CONFIG_ENV] = previous
    env_path = os.environ.get(CONFIG_ENV)
    if env_path and not Path(env_path).is_file():
        raise FileNotFoundError(f"{CONFIG_ENV}={env_path!r} does not exist")
    return Settings(**overrides)
