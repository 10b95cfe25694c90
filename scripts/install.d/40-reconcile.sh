# Reconcile tests: a real MariaDB (slurmdbd schema) and Debian's Slurm 22.05 accounting stack
# (munged, slurmdbd, slurmctld, slurmd, sacct/sacctmgr) started by tests/services/.
apt_ensure mariadb-server mariadb-client munge slurmdbd slurmctld slurmd slurm-client
