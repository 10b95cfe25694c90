#!/bin/bash
# Least privilege for jobcarbon: it only ever reads slurmdbd's tables.
set -euo pipefail
mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" <<SQL
CREATE USER IF NOT EXISTS 'jobcarbon_reader'@'%' IDENTIFIED BY '${JOBCARBON_ACCT_PASSWORD}';
GRANT SELECT ON slurm_acct_db.* TO 'jobcarbon_reader'@'%';
SQL
