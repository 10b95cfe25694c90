--[[
Stand-in for the Slurm side of a Lua plugin (the sbatch host for cli_filter, slurmctld for
job_submit): the global `slurm` table exactly as Slurm 24.11 builds it for that plugin, minus
what needs a running Slurm. Real plugin code runs unchanged in real Lua.

Slurm 24.11 (src/lua/slurm_lua.c, _register_slurm_output_functions) gives every Lua plugin
slurm.log, slurm.error, slurm.time_str2mins, slurm.get_qos_priority, the wrappers log_error,
log_info, log_verbose, log_debug .. log_debug4 (string.format of their arguments), SUCCESS,
ERROR, FAILURE and constants. On top of that:
  * cli_filter/lua (cli_filter_lua.c, slurm_functions): json_cli_options, json_env,
    cli_store, cli_retrieve. No log_user / user_msg: a cli_filter talks to the user on stderr.
  * job_submit/lua (job_submit_lua.c, _register_local_output_functions): user_msg and its
    wrapper log_user.
Calling anything else is a nil call here as it would be in Slurm. time_str2mins and
get_qos_priority need Slurm's libraries and are left out (neither plugin uses them).

usage: lua5.3 harness.lua PLUGIN.lua CALLS_JSON
CALLS_JSON: [{"call": "slurm_cli_pre_submit", "args": [...]}, ...]
prints {"results": [rc, ...], "info": [...], "user": [...], "error": [...]}
("user": job_submit's log_user/user_msg; a cli_filter's user output is the process' stderr)
]]
local cjson = require("cjson")
local plugin, calls = arg[1], cjson.decode(arg[2])
local logs = { info = {}, user = {}, error = {} }

slurm = { SUCCESS = 0, ERROR = -1, FAILURE = -1 }
-- slurm.log(level, msg) and slurm.error(msg) take a formatted string, as in slurm_lua.c.
function slurm.log(level, msg) table.insert(logs.info, msg) end
function slurm.error(msg) table.insert(logs.error, msg) end
slurm.log_error = function(...) slurm.error(string.format(table.unpack({...}))) end
for level, name in ipairs({ "log_info", "log_verbose", "log_debug", "log_debug2",
                            "log_debug3", "log_debug4" }) do
   slurm[name] = function(...) slurm.log(level - 1, string.format(table.unpack({...}))) end
end

local kind = plugin:match("([%w_]+)%.lua$")
if kind == "job_submit" then
   function slurm.user_msg(msg) table.insert(logs.user, msg) end
   slurm.log_user = function(...) slurm.user_msg(string.format(table.unpack({...}))) end
elseif kind == "cli_filter" then
   local stored = {}
   slurm.json_cli_options = function(options) return cjson.encode(options) end
   slurm.json_env = function() return cjson.encode({}) end
   slurm.cli_store = function(key, data) stored[tonumber(key)] = data end
   slurm.cli_retrieve = function(key) return stored[tonumber(key)] end
else
   error("harness.lua: unknown plugin kind " .. tostring(kind))
end

assert(loadfile(plugin))()
local results = {}
for _, c in ipairs(calls) do
   results[#results + 1] = _G[c.call](table.unpack(c.args))
end
io.write(cjson.encode({ results = results, info = logs.info, user = logs.user, error = logs.error }))
