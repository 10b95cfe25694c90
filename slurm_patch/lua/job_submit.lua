--[[
jobcarbon job_submit plugin (slurmctld, job_submit/lua): fast hard deny from a local cache.

No network on the controller's hot path: the deny list is a plain file written by
`jobcarbon credit deny-list` (cron or a timer), one scope per line: `account` or
`account/user`; lines starting with # are comments. The file is re-read at most every
CACHE_SECONDS. A job whose account (or account and user) is listed is rejected with a
message; everything else passes. A missing file denies nothing.
]]

local DENY_FILE = os.getenv("JOBCARBON_DENY_FILE") or "/etc/slurm/jobcarbon-deny.txt"
local CACHE_SECONDS = tonumber(os.getenv("JOBCARBON_DENY_CACHE_SECONDS") or "30") or 30

local cache = { loaded_at = nil, scopes = {} }

local function load_scopes(now)
   if cache.loaded_at and now - cache.loaded_at < CACHE_SECONDS then
      return cache.scopes
   end
   local scopes = {}
   local fh = io.open(DENY_FILE, "r")
   if fh then
      for line in fh:lines() do
         local scope = line:match("^%s*([^#%s][^%s]*)%s*$")
         if scope then scopes[scope] = true end
      end
      fh:close()
   end
   cache.loaded_at, cache.scopes = now, scopes
   return scopes
end

function slurm_job_submit(job_desc, part_list, submit_uid)
   local account = job_desc.account
   if account == nil or account == "" then
      return slurm.SUCCESS -- default account: resolved later by slurmctld, not cached here
   end
   local scopes = load_scopes(os.time())
   local user = job_desc.user_name
   if scopes[account] or (user and scopes[account .. "/" .. user]) then
      slurm.log_info("%s", string.format("jobcarbon: job from uid %s denied: account %s is over its carbon credit",
         tostring(submit_uid), account))
      slurm.log_user("%s", "jobcarbon: account " .. account
         .. " has used its carbon credit for this period; ask your PI or the HPC admins")
      return slurm.ERROR
   end
   return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
   return slurm.SUCCESS
end

return slurm.SUCCESS
