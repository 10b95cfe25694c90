"""Submission-time carbon credit: policy, prediction, greener start, decision (pure core).

The shells (warehouse ledger store, HTTP API, ``jobcarbon sbatch``, Slurm Lua plugins) only
move data in and out of these functions.
"""
