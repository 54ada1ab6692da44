--- A Redis Cluster's redirections as a connection follows them
-- (streamctl.store.redisconn): the hash tag that places a key, what a
-- `MOVED` or `ASK` answer names, and the one follow per call (a MOVED slot
-- remembered per hash tag, an ASK sent once with ASKING).
-- @module streamctl.store.rediscluster

local tonumber, tostring = tonumber, tostring
local find, sub, match = string.find, string.sub, string.match

local check_host = require("streamctl.store.redisconfig").check_host

local M = {}

--- The hash tag of a key as Redis Cluster reads it: what lies between the
-- first '{' and the next '}' when that is not empty, else the whole key.
function M.hash_tag(key)
  local open = find(key, "{", 1, true)
  if open then
    local close = find(key, "}", open + 1, true)
    if close and close > open + 1 then return sub(key, open + 1, close - 1) end
  end
  return key
end

--- "MOVED 3999 127.0.0.1:6381" -> "MOVED", host, port (an empty host: the
-- node `from` that answered); the word alone when the address is not one
-- streamctl can use; nil when err is no redirection.
function M.redirection(err, from)
  local what, addr = match(err, "^(%u+) %d+ (%S+)$")
  if what ~= "MOVED" and what ~= "ASK" then return nil end
  local host, port = match(addr, "^(.*):(%d+)$")
  if host then host = match(host, "^%[(.*)%]$") or host end
  if host == "" then host = from.host end
  port = port and #port <= 5 and tonumber(port)
  if not host or not check_host(host) or not port or port < 1 or port > 65535 then return what end
  return what, host, port
end

local ASKING = { "ASKING" }

--- The follow of a connection module: `node_for(conn, host, port)` its
-- node for an address, `max_routes()` how many hash tags a connection
-- remembers. The function returned follows the redirection `err` that
-- `from` answered, once: `follow(conn, session, from, tag, err, run)` gives
-- the call's result, or nil, message, kind (the sessions' shape).
function M.follower(node_for, max_routes)
  return function(self, session, from, tag, err, run)
    local what, host, port = M.redirection(err, from)
    if not host then return nil, err .. " (streamctl cannot follow that address)", "server" end
    local node = node_for(self, host, port)
    local fn = run
    if what == "MOVED" then
      if tag then
        if self._route_count >= max_routes() then self._routes, self._route_count = {}, 0 end
        if self._routes[tag] == nil then self._route_count = self._route_count + 1 end
        self._routes[tag] = node ~= self._home and node or false
      end
    else
      -- ASKING lets the importing node run the next command, once
      fn = function(cmd)
        return run(function(argv)
          local r, aerr, akind = cmd(ASKING)
          if r == nil then return nil, aerr, akind end
          return cmd(argv)
        end)
      end
    end
    local res, rerr, kind = session(self, node, fn)
    if res == nil then
      if tag and kind == "io" and self._routes[tag] == node then self._routes[tag] = false end
      if kind == "server" and M.redirection(rerr, node) then
        rerr = rerr .. " (a second redirection: streamctl follows one per call)"
      end
      return nil, "after " .. what .. " to " .. node.addr .. ": " .. tostring(rerr), kind
    end
    return res
  end
end

return M
