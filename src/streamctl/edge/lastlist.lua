--- The last forbid list the door read whole, for the moments it cannot read
-- the list itself (a Redis failover, a list being made whole again after
-- one): the door answers from it for a bounded time (the edge's
-- list_grace_s), then by on_list_error (streamctl.edge.admission).
--
--   local last = lastlist.new(desired_store)   -- (streamctl.operator.desired)
--   last:refresh()                             -- a timer's: the members read whole, or kept as they were
--   last:has("zego|cam-1")                     --> false, 0.7 (listed?, its age in seconds)
--
-- It holds the members only: a forbid under way (a pending mark) while the
-- list cannot be read is not in it (the provider's ban still stands once
-- sent). Its memory is one string per listed stream, read again at each
-- refresh (SMEMBERS in Redis): the edge refreshes it every second in each
-- worker, only with Redis (a shared dict never fails over).
-- @module streamctl.edge.lastlist

local core = require "streamctl.core"

local type, ipairs, setmetatable, error, tostring = type, ipairs, setmetatable, error, tostring

local M = {}

local Last = {}
Last.__index = Last

--- A holder over `store` (an object with `members()`); `now` (seconds, monotonic) for tests.
function M.new(store, now)
  if type(store) ~= "table" or type(store.members) ~= "function" then
    error("bad argument #1 to 'new' (a store with members() expected)", 2)
  end
  return setmetatable({ store = store, now = now or core.monotonic, set = nil, at = nil }, Last)
end

--- Reads the list whole: true; or nil and why (the last one read is kept as it was).
function Last:refresh()
  local members, why = self.store:members()
  if not members then return nil, tostring(why) end
  local set = {}
  for _, k in ipairs(members) do set[k] = true end
  self.set, self.at = set, self.now()
  return true
end

--- Whether the last list read whole holds `key`, and how many seconds ago it was read; or nil when
-- none has been read.
function Last:has(key)
  if not self.set then return nil end
  return self.set[key] == true, self.now() - self.at
end

return M
