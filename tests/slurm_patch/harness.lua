--[[
Stand-in for the Slurm side of a Lua plugin (the sbatch host for cli_filter, slurmctld for
job_submit): the `slurm` table with SUCCESS/ERROR and the log functions, which format their
arguments like Slurm's own (string.format). Real plugin code runs unchanged in real Lua.

usage: lua5.3 harness.lua PLUGIN.lua CALLS_JSON
CALLS_JSON: [{"call": "slurm_cli_pre_submit", "args": [...]}, ...]
prints {"results": [rc, ...], "info": [...], "user": [...], "error": [...]}
]]
local cjson = require("cjson")
local plugin, calls = arg[1], cjson.decode(arg[2])
local logs = { info = {}, user = {}, error = {} }
local function logger(kind)
   return function(fmt, ...) table.insert(logs[kind], string.format(fmt, ...)) end
end
slurm = {
   SUCCESS = 0, ERROR = -1,
   log_info = logger("info"), log_verbose = logger("info"), log_debug = logger("info"),
   log_user = logger("user"), log_error = logger("error"),
}
assert(loadfile(plugin))()
local results = {}
for _, c in ipairs(calls) do
   results[#results + 1] = _G[c.call](table.unpack(c.args))
end
io.write(cjson.encode({ results = results, info = logs.info, user = logs.user, error = logs.error }))
