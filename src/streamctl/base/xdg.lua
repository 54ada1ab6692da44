--- Where a user's files go: a variable of streamctl's own, else an XDG
-- base directory, else its default under HOME (the XDG Base Directory
-- specification: a relative XDG value is ignored). One rule for the
-- audit log ($XDG_STATE_HOME) and the credentials cache ($XDG_CACHE_HOME).
-- @module streamctl.base.xdg

local sub = string.sub

local M = {}

--- The path: `getenv(own)` when set, else `$xdg/tail` when absolute, else
-- `$HOME/home_dir/tail`; nil without HOME.
-- @tparam function getenv the environment
-- @tparam string own streamctl's variable (STREAMCTL_AUDIT_LOG)
-- @tparam string xdg the XDG variable (XDG_STATE_HOME)
-- @tparam string home_dir its default under HOME (.local/state)
-- @tparam string tail what follows the directory (streamctl/audit.jsonl)
function M.path(getenv, own, xdg, home_dir, tail)
  local v = getenv(own)
  if v and v ~= "" then return v end
  local base = getenv(xdg)
  if base and sub(base, 1, 1) == "/" then return base .. "/" .. tail end
  local home = getenv("HOME")
  if home and home ~= "" then return home .. "/" .. home_dir .. "/" .. tail end
  return nil
end

return M
