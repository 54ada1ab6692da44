-- Test helper: a stand-in for an ngx.shared dict, the calls streamctl's
-- stores make (get, set, add, safe_set, safe_add, delete, incr, expire, get_keys),
-- each expiry in seconds against `clock.t`, which the spec moves. `adds`
-- counts the calls to add (a lock's tries). `incr` on a value that is no
-- number answers as ngx.shared's does: nil, "not a number".
--
--   local dict = require("spec.helpers.fake_shdict").new({ t = 0 })
--   local enter, leave = require("spec.helpers.fake_shdict").init_phase()   -- before_each, after_each

local M = {}

function M.new(clock)
  local d = { values = {}, expires = {}, adds = 0 }
  local function live(k)
    local e = d.expires[k]
    if e and e <= clock.t then d.values[k], d.expires[k] = nil, nil end
    return d.values[k]
  end
  function d:get(k) return live(k) end -- luacheck: ignore 212/self
  function d:set(k, v, ttl) -- luacheck: ignore 212/self
    d.values[k], d.expires[k] = v, (ttl and ttl > 0) and clock.t + ttl or nil
    return true
  end
  function d:add(k, v, ttl)
    d.adds = d.adds + 1
    if live(k) ~= nil then return false, "exists" end
    return self:set(k, v, ttl)
  end
  d.safe_set, d.safe_add = d.set, d.add
  function d:delete(k) d.values[k], d.expires[k] = nil, nil end -- luacheck: ignore 212/self
  function d:incr(k, by, init, ttl)
    local v = live(k)
    if v == nil then
      if init == nil then return nil, "not found" end
      self:set(k, init + by, ttl)
      return init + by
    end
    if type(v) ~= "number" then return nil, "not a number" end
    d.values[k] = v + by
    return v + by
  end
  function d:expire(k, ttl) d.expires[k] = clock.t + ttl return true end -- luacheck: ignore 212/self
  function d:get_keys() -- luacheck: ignore 212/self
    local out = {}
    for k in pairs(d.values) do if live(k) ~= nil then out[#out + 1] = k end end
    return out
  end
  return d
end

--- `ngx` stood in for by one whose phase is init_by_lua (all the stores'
-- lock reads: it spins, never sleeps), and put back: two functions, for a
-- describe's before_each and after_each.
function M.init_phase()
  local saved
  return function()
    saved = rawget(_G, "ngx")
    rawset(_G, "ngx", { get_phase = function() return "init" end })
  end, function() rawset(_G, "ngx", saved) end
end

return M
