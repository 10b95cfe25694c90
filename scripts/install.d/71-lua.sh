# A real Lua interpreter for the Slurm cli_filter/job_submit plugin tests (curl is on the image).
apt_ensure lua5.3 lua-cjson curl
