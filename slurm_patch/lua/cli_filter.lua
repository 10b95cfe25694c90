--[[
jobcarbon cli_filter plugin (Slurm cli_filter/lua): the carbon credit check at submission.

  pre_submit : ask the credit API (POST /v1/check) with a MUNGE credential, print the
               summary to the user, refuse the submission when the decision is "deny".
  post_submit: reserve the job's predicted CO2e (POST /v1/reservations) with its job id.

If the API cannot be reached the submission goes ahead (fail open): the controller-side
job_submit.lua enforces hard denials from its local cache without any network call.

Configuration (environment, or edit the defaults below):
  JOBCARBON_CREDIT_API_URL   default http://127.0.0.1:8470
  JOBCARBON_MUNGE_SOCKET     default /run/munge/munge.socket.2
  JOBCARBON_USER             accounting user name (default: the login name, `id -un`)
  JOBCARBON_CREDIT_TIMEOUT   seconds, default 5
Needs: lua-cjson, curl and munge on the submit host.
]]

local cjson = require("cjson")

local API_URL = os.getenv("JOBCARBON_CREDIT_API_URL") or "http://127.0.0.1:8470"
local MUNGE_SOCKET = os.getenv("JOBCARBON_MUNGE_SOCKET") or "/run/munge/munge.socket.2"
local TIMEOUT = tonumber(os.getenv("JOBCARBON_CREDIT_TIMEOUT") or "5") or 5

-- what pre_submit asked, for post_submit (same sbatch process, same Lua state)
local pending = nil

local function shell_quote(s)
   return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function read_command(cmd)
   local handle = io.popen(cmd, "r")
   if not handle then return nil end
   local out = handle:read("*a")
   handle:close()
   return out
end

local function login_name()
   local name = os.getenv("JOBCARBON_USER")
   if name and name ~= "" then return name end
   return (read_command("id -un 2>/dev/null") or ""):gsub("%s+$", "")
end

local function credential()
   local out = read_command("munge -n -S " .. shell_quote(MUNGE_SOCKET) .. " 2>/dev/null") or ""
   local cred = out:match("^(MUNGE:[A-Za-z0-9+/=]+:)%s*$")
   return cred
end

-- POST a JSON body; returns (status, decoded body or nil, error text or nil)
local function post(path, body)
   local cred = credential()
   if not cred then return nil, nil, "cannot get a MUNGE credential" end
   local tmp = os.tmpname()
   local fh = io.open(tmp, "w")
   fh:write(cjson.encode(body))
   fh:close()
   local cmd = "curl -sS --max-time " .. TIMEOUT
      .. " -o - -w '\\n%{http_code}' -X POST"
      .. " -H 'Content-Type: application/json'"
      .. " -H " .. shell_quote("X-Munge-Credential: " .. cred)
      .. " --data-binary @" .. shell_quote(tmp)
      .. " " .. shell_quote(API_URL .. path) .. " 2>&1"
   local out = read_command(cmd) or ""
   os.remove(tmp)
   local text, code = out:match("^(.*)\n(%d%d%d)$")
   if not code or code == "000" then return nil, nil, "credit API unreachable: " .. out end
   local ok, decoded = pcall(cjson.decode, text)
   return tonumber(code), ok and decoded or nil, nil
end

local function seconds(t)
   if not t or t == "" then return nil end
   local d, rest = t:match("^(%d+)%-(.*)$")
   d = tonumber(d) or 0
   rest = rest or t
   local parts = {}
   for p in rest:gmatch("[^:]+") do parts[#parts + 1] = tonumber(p) end
   local h, m, s = 0, 0, 0
   if d > 0 or t:find("-", 1, true) then
      h, m, s = parts[1] or 0, parts[2] or 0, parts[3] or 0
   elseif #parts == 1 then m = parts[1]
   elseif #parts == 2 then m, s = parts[1], parts[2]
   else h, m, s = parts[1], parts[2], parts[3] end
   if not (h and m and s) then return nil end
   return ((d * 24 + h) * 60 + m) * 60 + s
end

-- "2-4" nodes -> 2 (the minimum), "a100:4" gpus -> 4
local function leading_int(v, default)
   if v == nil then return default end
   local text = tostring(v)
   return tonumber(text:match(":(%d+)$") or text:match("^(%d+)")) or default
end

local function kg(g) return string.format("%.3f kgCO2e", (g or 0) / 1000) end

local function summary(c)
   local lines = {
      string.format("jobcarbon: your emissions, last %g days: past %s, running %s, total %s",
         c.past_window_days, kg(c.past_co2e_g), kg(c.running_co2e_g), kg(c.total_co2e_g)),
      string.format("jobcarbon: this job: %.2f kWh, %s at %.0f g/kWh; credit left: %s",
         c.prediction.energy_it_j / 3.6e6, kg(c.predicted_co2e_g), c.intensity_g_per_kwh,
         c.available_credit_kg == cjson.null and "no limit"
            or string.format("%.3f kgCO2e", c.available_credit_kg)),
   }
   if c.suggested_begin ~= cjson.null and c.suggested_begin then
      lines[#lines + 1] = string.format(
         "jobcarbon: greener start: --begin=%s saves %.0f g", c.suggested_begin,
         c.greener.co2e_saved_g)
   end
   lines[#lines + 1] = "jobcarbon: " .. string.upper(c.decision) .. ": " .. c.message
   return table.concat(lines, "\n")
end

-- Print to the submitting user. cli_filter/lua runs inside sbatch/salloc/srun, and 24.11's
-- cli_filter/lua has no slurm.log_user (only job_submit/lua does): stderr is the user's terminal.
local function tell_user(text)
   if slurm.log_user then
      slurm.log_user("%s", text)
   else
      io.stderr:write(text, "\n")
   end
end

function slurm_cli_setup_defaults(options, early_pass)
   return slurm.SUCCESS
end

function slurm_cli_pre_submit(options, pack_offset)
   local limit = seconds(options["time"])
   local account = options["account"] or os.getenv("SBATCH_ACCOUNT")
   if not limit or not account then
      slurm.log_info("%s", "jobcarbon: no walltime or account given, credit check skipped")
      return slurm.SUCCESS
   end
   local ntasks = leading_int(options["ntasks"], 1)
   local cpt = leading_int(options["cpus-per-task"], 1)
   local body = {
      user = login_name(),
      account = account,
      partition = options["partition"] or "default",
      nodes = leading_int(options["nodes"], 1),
      cpus = math.max(1, ntasks * cpt),
      gpus = leading_int(options["gpus"], 0),
      time_limit_s = limit,
      job_name = options["job-name"] or "sbatch",
   }
   local status, check, err = post("/v1/check", body)
   if not status then
      slurm.log_info("%s", "jobcarbon: " .. err .. "; submitting without a credit check")
      return slurm.SUCCESS
   end
   if status ~= 200 or type(check) ~= "table" then
      local detail = type(check) == "table" and check.detail or "no detail"
      slurm.log_info("%s", "jobcarbon: credit check failed (" .. status .. "): "
         .. (type(detail) == "string" and detail or cjson.encode(detail)))
      return slurm.SUCCESS
   end
   tell_user(summary(check))
   if check.decision == "deny" then
      return slurm.ERROR
   end
   pending = body
   return slurm.SUCCESS
end

function slurm_cli_post_submit(offset, jobid, stepid)
   if not pending or not jobid then return slurm.SUCCESS end
   local body = {}
   for k, v in pairs(pending) do body[k] = v end
   body.job_id = tonumber(jobid)
   local status, reply, err = post("/v1/reservations", body)
   if status == 201 then
      slurm.log_info("%s", string.format("jobcarbon: reserved %s for job %d", kg(reply.co2e_g), jobid))
   else
      slurm.log_info("%s", "jobcarbon: reservation failed: " .. (err or tostring(status)))
   end
   return slurm.SUCCESS
end
