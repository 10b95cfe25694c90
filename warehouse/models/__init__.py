"""Every warehouse table (importing this package registers them on ``Base.metadata``)."""

from warehouse.models.base import Base, table_of
from warehouse.models.credit import LEDGER_ENTRY_TYPES, CreditAllocation, CreditLedger
from warehouse.models.credit_indexes import CREDIT_CHECK_INDEXES
from warehouse.models.dims import NONE, DimAccount, DimCluster, DimPartition, DimQos, DimUser
from warehouse.models.facts import (
    ENERGY_ORIGINS,
    PG_UNENFORCED_FOREIGN_KEYS,
    RECONCILE_STATUSES,
    FactJob,
    FactJobCo2e,
)
from warehouse.models.rollups import (
    COUNT_MEASURES,
    MEASURES,
    SUM_MEASURES,
    RollupAccountDay,
    RollupAccountMonth,
    RollupUserDay,
)
from warehouse.models.series import CarbonIntensity, MeterReading, PueInterval

__all__ = [
    "COUNT_MEASURES",
    "CREDIT_CHECK_INDEXES",
    "ENERGY_ORIGINS",
    "LEDGER_ENTRY_TYPES",
    "MEASURES",
    "NONE",
    "PG_UNENFORCED_FOREIGN_KEYS",
    "RECONCILE_STATUSES",
    "SUM_MEASURES",
    "Base",
    "CarbonIntensity",
    "CreditAllocation",
    "CreditLedger",
    "DimAccount",
    "DimCluster",
    "DimPartition",
    "DimQos",
    "DimUser",
    "FactJob",
    "FactJobCo2e",
    "MeterReading",
    "PueInterval",
    "RollupAccountDay",
    "RollupAccountMonth",
    "RollupUserDay",
    "table_of",
]
