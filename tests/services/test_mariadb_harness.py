"""The MariaDB harness itself: the real 25.05 dump loads and the reader cannot write."""

from __future__ import annotations

import pymysql
import pytest

from tests.services.mariadb import AccountingDB

pytestmark = pytest.mark.mariadb


def test_dump_is_the_real_25_05_schema(slurmdb_2505: AccountingDB) -> None:
    conn = slurmdb_2505.root()
    with conn.cursor() as cur:
        cur.execute("SELECT name, rpc_version FROM cluster_table")
        assert cur.fetchall() == (("localcluster", 11008),)
        cur.execute("SELECT COUNT(*) FROM localcluster_job_table")
        (jobs,) = cur.fetchone()
        cur.execute("SELECT COUNT(*) FROM tres_table WHERE id = 3 AND type = 'energy'")
        (energy,) = cur.fetchone()
    conn.close()
    assert jobs > 0
    assert energy == 1


def test_reader_is_read_only(slurmdb_2505: AccountingDB) -> None:
    conn = pymysql.connect(
        host="127.0.0.1",
        port=slurmdb_2505.server.port,
        user=slurmdb_2505.user,
        password=slurmdb_2505.password,
        database=slurmdb_2505.database,
    )
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM localcluster_job_table")
        with pytest.raises(pymysql.err.OperationalError):
            cur.execute("DELETE FROM localcluster_job_table")
    conn.close()
