--- Redis through Sentinel, as a connection follows it
-- (streamctl.store.redisconn): which master the Sentinels name, that it is
-- one, and when to ask them again.
--
-- As redis.io's guidelines for Sentinel clients have it: the Sentinels are
-- asked in turn (`SENTINEL get-master-addr-by-name NAME`) from the one that
-- answered last; the first answer is taken; the node it names is asked
-- `ROLE` on every new connection, and one that is not a master is refused
-- (a failover under way: the Sentinels are asked again at the next call).
-- The Sentinels are asked again every `sentinel_check_ms` (a call after
-- that long asks them first: one round trip to a Sentinel), so a failover
-- that leaves the old master up and taking writes until Sentinel converts
-- it (SENTINEL FAILOVER; a partition) is followed within that time.
-- The master is forgotten, and the Sentinels asked again, when a call
-- cannot reach it (a refused connection, a connection lost), when it
-- answers as a replica (`READONLY`: Sentinel demoted it) or refuses writes
-- for want of replicas (`NOREPLICAS`, `MASTERDOWN`), or when a new
-- connection's ROLE says replica. Sentinel disconnects the clients of a node
-- it reconfigures (`CLIENT KILL TYPE normal`), so a connection kept from
-- before a failover fails at its next command and is made again.
--
-- What a call does when the master it used is gone: when nothing of the
-- call reached a master (the connection or its greeting failed, or a
-- replica refused the script with READONLY before it wrote a key), it is
-- sent once more to the master the Sentinels name now; otherwise (a timeout,
-- a connection lost mid-call) it fails as before, and the store's loss
-- rules apply (streamctl.store.redis): a promoted replica's data may lack
-- the last writes, and its new run id tells every budget so.
-- @module streamctl.store.redissentinel

local type, tonumber, tostring, ipairs = type, tonumber, tostring, ipairs
local find, format = string.find, string.format
local concat = table.concat

local redisconfig = require "streamctl.store.redisconfig"
local check_host = redisconfig.check_host
local monotonic = require("streamctl.core").monotonic

local M = {}

--- The Sentinel nodes of connection `self` (config `cfg`), each as
-- `node_for` makes a node, marked `sentinel`, its nginx pool named by the
-- Sentinels' own login (`pool_id(user, password)`).
function M.nodes(self, cfg, node_for, pool_id)
  local list = {}
  for i, e in ipairs(cfg.sentinels) do
    local node = node_for(self, e.host, e.port, "sentinel")
    node.sentinel = true
    node.pool = "streamctl.sentinel:" .. node.addr .. ":" .. pool_id(cfg.sentinel_user, cfg.sentinel_password)
      .. (self._tls and self._tls.pool or "")
    list[i] = node
  end
  return list
end

--- The greeting on a new connection to a Sentinel: AUTH with the
-- Sentinels' login, if any. nil, or err, kind.
function M.greet(cfg, send)
  if not cfg.sentinel_password then return nil end
  local r, err, kind = send(redisconfig.auth(cfg.sentinel_user, cfg.sentinel_password))
  if r == nil then return "Sentinel AUTH: " .. tostring(err), kind end
  return nil
end

--- The check on a new connection to the node the Sentinels named: ROLE says
-- master. nil, or err, kind.
function M.verify(node, send)
  local r, err, kind = send { "ROLE" }
  if r == nil then return "ROLE: " .. tostring(err), kind end
  local role = type(r) == "table" and r[1]
  if role ~= "master" then
    return format("%s, which Sentinel named the master, says it is %s (a failover under way?)", node.addr,
      type(role) == "string" and "a " .. role or "no role"), "io"
  end
  return nil
end

-- The master's address in a Sentinel's answer; nil, why.
local function master_of(r, null)
  if r == null or r == nil then return nil, "does not know that master" end
  local host, port = type(r) == "table" and r[1], type(r) == "table" and tonumber(r[2])
  if type(host) ~= "string" or not check_host(host) or not port or port < 1 or port > 65535 or port % 1 ~= 0 then
    return nil, "answered no address"
  end
  return host, port
end

--- The master the Sentinels name now, as a node of `self` (marked
-- `verify`), asked through `session` (the connection's); the Sentinel that
-- answered goes first in the list. nil, err, "io" when none named one.
function M.discover(self, session, node_for, null)
  local name, list, why = self.config.master_name, self._sentinels, {}
  for i, s in ipairs(list) do
    local r, err = session(self, s, function(cmd) return cmd { "SENTINEL", "get-master-addr-by-name", name } end)
    local host, port
    if r ~= nil then host, port = master_of(r, null) end
    if host then
      if i > 1 then table.remove(list, i) table.insert(list, 1, s) end
      local node = node_for(self, host, port)
      node.verify = true
      return node
    end
    why[#why + 1] = s.addr .. " " .. (r == nil and tostring(err) or port)
  end
  return nil, format("no Sentinel named the master '%s' (%s)", name, concat(why, "; ")), "io"
end

-- Answers of a node that is no master any more, or cannot take writes.
local function not_master(err)
  return find(err, "^READONLY") or find(err, "^NOREPLICAS") or find(err, "^MASTERDOWN")
end

--- After a call to the master failed: whether to ask the Sentinels again
-- (the master forgotten), and whether the call may be sent again now
-- (nothing of it reached a master: `unsent`, or a READONLY answer).
function M.after(err, kind, unsent)
  local refused = kind == "server" and not_master(tostring(err))
  if kind ~= "io" and not refused then return false, false end
  return true, unsent or (refused and find(tostring(err), "^READONLY") ~= nil)
end

--- A call through Sentinel (the connection's `eval`): to the master the
-- Sentinels name (asked at the first call and after the master was lost),
-- sent once more to the one they name then when nothing of the call
-- reached a master. The call's result, or nil, err, kind.
function M.call(self, session, run, node_for, null)
  local res, err, kind
  local now = monotonic()
  if self._home and now >= (self._asked_at or 0) + self.config.sentinel_check_ms / 1000 then
    -- (asked again after another interval whatever they answer: Sentinels that are down are not
    -- asked at every call; the master known goes on serving meanwhile)
    self._asked_at = now
    local node = M.discover(self, session, node_for, null)
    if node then M.switch(self, node) end
  end
  for _ = 1, 2 do
    local node = self._home
    if not node then
      node, err, kind = M.discover(self, session, node_for, null)
      if not node then return nil, err, kind end
      self._asked_at = now
      M.switch(self, node)
    end
    local unsent
    res, err, kind, unsent = session(self, node, run)
    if res ~= nil then return res end
    local forget, again = M.after(err, kind, unsent)
    if forget then self._home, self._last = nil, node end -- (messages still name it)
    if not again then break end
  end
  return nil, err, kind
end

--- Makes `node` the master of connection `self`; the connection kept to
-- the one before, if another, is closed (it is no master now).
function M.switch(self, node)
  local old = self._home
  if old and old ~= node and old.link then
    old.link:close()
    old.link = nil
  end
  self._home = node
end

--- Where a Sentinel connection's messages say it goes: the master it
-- uses, or used last, else the Sentinel it asks first.
function M.address(self)
  local home = self._home or self._last
  if home then return home.addr .. " (master '" .. self.config.master_name .. "' by Sentinel)" end
  return "master '" .. self.config.master_name .. "' by Sentinel " .. self._sentinels[1].addr
end

return M
