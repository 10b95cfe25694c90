# slurm_patch/check.sh and the one-host cluster harness (tests/services/slurm_build.py):
# what configure, the jobcomp/kafka plugin and the full daemon build need (MySQL client for
# accounting_storage/mysql in the cluster's slurmdbd, Lua 5.3 for cli_filter/lua).
apt_ensure build-essential pkg-config xz-utils libmunge-dev librdkafka-dev libjson-c-dev \
    libhttp-parser-dev libjwt-dev libyaml-dev liblz4-dev libhwloc-dev libdbus-1-dev \
    libreadline-dev libncurses-dev libcurl4-openssl-dev libpam0g-dev \
    default-libmysqlclient-dev liblua5.3-dev
