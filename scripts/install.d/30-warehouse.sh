# Warehouse tests start a real PostgreSQL 15 server (as the `postgres` user, via runuser).
apt_ensure postgresql-15 util-linux
