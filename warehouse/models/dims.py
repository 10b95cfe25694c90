"""Dimensions: who ran the job, charged to which account, where.

Names are the natural keys; a record without a value lands on the ``NONE`` member so every
fact has every dimension (roll-up keys are never NULL).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import ForeignKey, Integer, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from warehouse.models.base import Base
from warehouse.types import BigId

#: The member a record without that dimension lands on (not a valid Slurm name).
NONE: Final = "(none)"


class DimCluster(Base):
    """A Slurm cluster (``ClusterName``)."""

    __tablename__ = "dim_cluster"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)


class DimUser(Base):
    """A user name (``uid`` as first seen; names are what accounting uses)."""

    __tablename__ = "dim_user"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    uid: Mapped[int | None] = mapped_column(Integer)


class DimAccount(Base):
    """A Slurm account with its place in the association tree.

    ``lineage`` is Slurm's path (``/root/physics/phys000/...``); ``parent_name`` is the
    nearest ancestor that is not the account itself (``physics``), ``None`` for top level.
    """

    __tablename__ = "dim_account"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
    parent_name: Mapped[str | None] = mapped_column(Text)
    lineage: Mapped[str | None] = mapped_column(Text)


class DimPartition(Base):
    """A partition of one cluster."""

    __tablename__ = "dim_partition"
    __table_args__ = (UniqueConstraint("cluster_id", "name"),)
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("dim_cluster.id"))
    name: Mapped[str] = mapped_column(Text)


class DimQos(Base):
    """A quality of service."""

    __tablename__ = "dim_qos"
    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(Text, unique=True)
