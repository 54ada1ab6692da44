-- Test helper: a throw-away redis-server on 127.0.0.1 for specs. Plain Lua
-- (5.1/LuaJIT and 5.4); luasocket for the readiness check and the silent server.
--
--   local redis = require "spec.helpers.redis"
--   local srv = redis.start { password = nil }   -- a free port, a fresh temp dir,
--                                                --   --save "" --appendonly no
--   srv.port, srv.dir, srv.pid, srv.password, srv.url ("redis://[:pw@]127.0.0.1:port")
--   srv:cli("GET", "k")       -> redis-cli's answer (raw, trailing newline removed)
--   srv:stop()                TERM, then KILL after 5 s; reaped; idempotent
--   srv:kill()                kill -9, reaped (a crash: connections see a reset or EOF)
--   srv:restart()             a new redis-server on the same port and dir (empty: no persistence)
--   srv:log()                 its log file so far
--   srv:scripts_run()         how many scripts it ran (EVALSHA and EVAL)
--
--   local cl = redis.start_cluster { password = nil }  -- a 3-master Redis Cluster (no replicas)
--   cl.nodes[1..3] (servers as above), cl.url (node 1's), cl:keyslot(key), cl:owner(key) -> 1..3
--   cl:stop()
--
--   local set = redis.start_sentinel { password = nil, sentinel_password = nil, replicas = 1 }
--   set.master, set.replicas, set.sentinels (servers as above), set.url ("redis+sentinel://..."),
--   set:failover("kill" | "command") -> the old master, set:master_port(i), set:settle(), set:stop()
--
--   local tls = redis.make_tls()      -- a CA, a server certificate for 127.0.0.1 (DNS and IP names),
--                                     --   a client certificate, another CA: tls.ca, tls.other_ca,
--                                     --   tls.client_cert, tls.client_key, tls.dir
--   redis.start { tls = tls, tls_auth_clients = "no" | "optional" | "yes" (default "no") }
--                 also listens with TLS on srv.tls_port (srv.port stays plain, for cli and the
--                 readiness check); srv.url is then "rediss://127.0.0.1:tls_port?tls_ca_file=..."
--   redis.start_sentinel { tls = tls }  every node and Sentinel the same, Sentinel reaching the nodes
--                 and naming them by their TLS ports; set.url "rediss+sentinel://...?tls_ca_file=..."
--
--   local sock, port = redis.silent_server()   -- listens, never accepts nor answers:
--                                               -- a connect succeeds, a command times out
--
-- Every wait is bounded (WAIT_SECONDS, by process.patience) and raises with the server's log when it
-- runs out. Only 127.0.0.1 is ever used.

local socket = require "socket"
local process = require "spec.helpers.process"

local M = {}

local WAIT_SECONDS = 10

local quote = process.quote

local run, read_file, capture = process.run, process.read_file, process.capture

-- Is `pid` a live process (not a zombie waiting to be reaped)?
local function alive(pid)
  local stat = read_file("/proc/" .. pid .. "/stat")
  if not stat then return false end
  return not stat:match("^%d+ %b() [ZX]")
end

--- true, or false and what is missing.
function M.available()
  if not run("command -v redis-server >/dev/null 2>&1") then
    return false, "missing redis-server (apt-get install redis-server)"
  end
  return true
end

local temp_dir = process.temp_dir

-- Does a redis-server answer PING on port (PONG, or NOAUTH with a password)?
local function answers(port)
  local tcp = socket.tcp()
  tcp:settimeout(0.5)
  if not tcp:connect("127.0.0.1", port) then
    tcp:close()
    return false
  end
  tcp:send("PING\r\n")
  local line = tcp:receive("*l")
  tcp:close()
  return line == "+PONG" or (line ~= nil and line:find("^%-NOAUTH") ~= nil)
end

-- This process's pid (/proc/self is the reader's own).
local function own_pid()
  return (assert(read_file("/proc/self/stat")):match("^(%d+)"))
end

local Server = {}
Server.__index = Server

local function launch(self)
  local args = {
    "redis-server", "--bind", "127.0.0.1", "--port", tostring(self.port),
    "--save", quote(""), "--appendonly", "no", "--dir", quote(self.dir),
    "--logfile", quote(self.dir .. "/redis.log"), "--daemonize", "no", "--protected-mode", "yes",
    "--databases", "16",
  }
  if self.tls and not self.sentinel_conf then
    for _, a in ipairs { "--tls-port", tostring(self.tls_port), "--tls-cert-file", self.tls.dir .. "/server.pem",
                         "--tls-key-file", self.tls.dir .. "/server.key", "--tls-ca-cert-file", self.tls.ca,
                         "--tls-auth-clients", self.tls_auth_clients or "no" } do
      args[#args + 1] = quote(a)
    end
  end
  if self.sentinel_conf then -- (a Sentinel: its file, which it rewrites, says it all)
    args = { "redis-server", quote(self.dir .. "/sentinel.conf"), "--sentinel" }
    local f = assert(io.open(self.dir .. "/sentinel.conf", "w"))
    f:write(self.sentinel_conf)
    f:close()
  elseif self.password then
    args[#args + 1] = "--requirepass"
    args[#args + 1] = quote(self.password)
  end
  for _, a in ipairs(not self.sentinel_conf and self.args or {}) do args[#args + 1] = quote(a) end
  local child = process.spawn(table.concat(args, " ") .. " </dev/null >/dev/null 2>&1")
  self.child, self.pid, self.running = child, child.pid, true
  -- A watchdog: should this process die without stopping the server, the
  -- server goes too (within a second) instead of living on.
  run("(while kill -0 " .. own_pid() .. " 2>/dev/null; do kill -0 " .. child.pid .. " 2>/dev/null || exit 0; "
    .. "sleep 1; done; kill -9 " .. child.pid .. ") </dev/null >/dev/null 2>&1 &")
  local deadline = socket.gettime() + process.patience(WAIT_SECONDS)
  while socket.gettime() < deadline do
    if not alive(child.pid) then break end
    if answers(self.port) then return self end
    socket.sleep(0.02)
  end
  local log = self:log()
  self:kill()
  error("redis-server did not come up on 127.0.0.1:" .. self.port .. ":\n" .. log, 3)
end

--- A CA (tls.ca), a certificate for 127.0.0.1 signed by it (server.pem and
-- server.key in tls.dir: DNS and IP names, for servers and, Sentinel's and
-- replicas' own connections, clients), a client certificate (tls.client_cert,
-- tls.client_key) and a CA that signed none of them (tls.other_ca).
function M.make_tls()
  local nginx = require "spec.helpers.nginx"
  local dir = temp_dir()
  nginx.make_ca(dir, "ca")
  nginx.make_ca(dir, "other")
  nginx.make_cert(dir, "server", "ca", "DNS:127.0.0.1,IP:127.0.0.1", "serverAuth,clientAuth")
  nginx.make_cert(dir, "client", "ca", "DNS:streamctl-client", "clientAuth")
  return { dir = dir, ca = dir .. "/ca.pem", other_ca = dir .. "/other.pem", client_cert = dir .. "/client.pem",
           client_key = dir .. "/client.key" }
end

--- Starts a redis-server. opts: `password` (requirepass), `port` (default a free one),
-- `args` (more redis-server arguments, e.g. { "--maxmemory-policy", "allkeys-lru" }),
-- `tls` (from make_tls: TLS on tls_port besides the plain port) and `tls_auth_clients`.
function M.start(opts)
  opts = opts or {}
  local ok, why = M.available()
  if not ok then error(why, 2) end
  local self = setmetatable({
    port = opts.port or process.free_port(),
    dir = temp_dir(),
    password = opts.password,
    args = opts.args,
    tls = opts.tls,
    tls_auth_clients = opts.tls_auth_clients,
  }, Server)
  local auth = self.password and (":" .. self.password .. "@") or ""
  self.url = "redis://" .. auth .. "127.0.0.1:" .. self.port
  if self.tls then
    self.tls_port = opts.tls_port or process.free_port()
    self.url = "rediss://" .. auth .. "127.0.0.1:" .. self.tls_port .. "?tls_ca_file=" .. self.tls.ca
  end
  return launch(self)
end

--- The port clients (and Sentinel) use: the TLS one when there is one.
function Server:client_port()
  return self.tls_port or self.port
end

function Server:log()
  return read_file(self.dir .. "/redis.log") or ""
end

-- Waits (bounded) for the child to exit after a signal, then reaps it.
local function reap(self, signal)
  local pid = self.pid
  run("kill -" .. signal .. " " .. pid .. " 2>/dev/null")
  local deadline = socket.gettime() + process.patience(5)
  while alive(pid) and socket.gettime() < deadline do socket.sleep(0.02) end
  if alive(pid) then
    run("kill -9 " .. pid .. " 2>/dev/null")
    deadline = socket.gettime() + process.patience(5)
    while alive(pid) and socket.gettime() < deadline do socket.sleep(0.02) end
  end
  self.child.pipe:close() -- reaps (the process has exited)
  self.running = false
end

--- How many scripts the server ran (EVALSHA and EVAL, as INFO commandstats counts them).
function Server:scripts_run()
  local stats = self:cli("INFO", "commandstats")
  local n = 0
  for _, name in ipairs { "evalsha", "eval" } do
    n = n + tonumber(stats:match("cmdstat_" .. name .. ":calls=(%d+)") or 0)
  end
  return n
end

--- kill -9: the server dies at once, as in a crash.
function Server:kill()
  if self.running then reap(self, "KILL") end
  return true
end

--- Stops the server and removes its directory.
function Server:stop()
  if self.running then reap(self, "TERM") end
  if self.dir then
    run("rm -rf " .. quote(self.dir))
    self.dir = nil
  end
  return true
end

--- Starts the server again on the same port and directory (after kill or stop).
function Server:restart()
  if self.running then reap(self, "TERM") end
  if not self.dir then self.dir = temp_dir() end
  -- the port was just released: another process could take it, but nothing else here asks for one
  return launch(self)
end

--- redis-cli with the server's port and password; returns its output without
-- the trailing newline.
function Server:cli(...)
  local args = { "redis-cli", "-h", "127.0.0.1", "-p", tostring(self.port) }
  if self.password then
    args[#args + 1] = "-a " .. quote(self.password) .. " --no-auth-warning"
  end
  for _, a in ipairs({ ... }) do args[#args + 1] = quote(tostring(a)) end
  return (capture(table.concat(args, " ") .. " 2>&1"):gsub("\n$", ""))
end

--- A socket listening on 127.0.0.1 that never accepts: connects complete (in the
-- kernel's backlog), commands are never answered. Close it with sock:close().
function M.silent_server()
  require("spec.helpers.ports").refuse_in_unit_tier("a silent server")
  local sock = assert(socket.bind("127.0.0.1", 0))
  local _, port = sock:getsockname()
  return sock, tonumber(port)
end

-- ---- Redis Cluster

local Cluster = {}
Cluster.__index = Cluster

--- Starts a Redis Cluster of three masters on 127.0.0.1, no replicas (each
-- node a server as `start` makes, its cluster bus on a free port of its own),
-- slots spread by `redis-cli --cluster create`; returns once every node says
-- cluster_state:ok (bounded: raises with the logs otherwise). opts: `password`.
function M.start_cluster(opts)
  opts = opts or {}
  local self = setmetatable({ nodes = {}, password = opts.password }, Cluster)
  local ok, err = pcall(function()
    local addrs = {}
    for i = 1, 3 do
      -- (the bus port is named: the default, port + 10000, may be taken or past 65535)
      local port, bus = process.free_port(), process.free_port()
      while bus == port do bus = process.free_port() end
      local node = M.start { port = port, password = opts.password, args = {
        "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
        "--cluster-port", tostring(bus), "--cluster-node-timeout", "5000",
      } }
      self.nodes[i] = node
      addrs[i] = "127.0.0.1:" .. node.port
    end
    local auth = opts.password and ("-a " .. quote(opts.password) .. " --no-auth-warning ") or ""
    local out = capture("redis-cli " .. auth .. "--cluster create " .. table.concat(addrs, " ")
      .. " --cluster-replicas 0 --cluster-yes 2>&1 </dev/null")
    local deadline = socket.gettime() + process.patience(WAIT_SECONDS)
    while true do
      local ready = true
      for _, node in ipairs(self.nodes) do
        if not node:cli("CLUSTER", "INFO"):find("cluster_state:ok", 1, true) then ready = false end
      end
      if ready then break end
      if socket.gettime() > deadline then
        error("the Redis Cluster did not reach cluster_state:ok:\n" .. out .. "\n" .. self.nodes[1]:log())
      end
      socket.sleep(0.05)
    end
  end)
  if not ok then
    self:stop()
    error(err, 2)
  end
  local first = self.nodes[1]
  self.url = "redis://" .. (self.password and (":" .. self.password .. "@") or "") .. "127.0.0.1:" .. first.port
  return self
end

--- The slot of `key` (CLUSTER KEYSLOT).
function Cluster:keyslot(key)
  return tonumber(self.nodes[1]:cli("CLUSTER", "KEYSLOT", key))
end

--- The index in `nodes` of the node that serves `key`'s slot (its own
-- CLUSTER NODES line, "myself", lists its ranges after "connected"; a slot
-- being migrated, "[slot->-id]", is not a range).
function Cluster:owner(key)
  local slot = self:keyslot(key)
  for i, node in ipairs(self.nodes) do
    local line = node:cli("CLUSTER", "NODES"):match("[^\n]*myself[^\n]*") or ""
    for lo, hi in (line:match(" connected(.*)$") or ""):gmatch(" (%d+)%-?(%d*)") do
      if slot >= tonumber(lo) and slot <= tonumber(hi ~= "" and hi or lo) then return i end
    end
  end
  error("no node serves slot " .. slot, 2)
end

--- Stops every node and removes their directories.
function Cluster:stop()
  for _, node in ipairs(self.nodes) do node:stop() end
  return true
end

-- ---- Redis Sentinel

local Sentinel = {}
Sentinel.__index = Sentinel

local MASTER_NAME = "mymaster"

-- Waits (bounded) until ok() holds; raises with what(), and the logs of `set`, when it does not.
local function wait_for(set, ok, what, seconds)
  local deadline = socket.gettime() + process.patience(seconds or WAIT_SECONDS)
  while not ok() do
    if socket.gettime() > deadline then
      local logs = {}
      for _, srv in ipairs(set:servers()) do logs[#logs + 1] = "== " .. srv.port .. "\n" .. srv:log() end
      error(what() .. "\n" .. table.concat(logs, "\n"), 3)
    end
    socket.sleep(0.05)
  end
end

--- Starts a master, `replicas` replicas of it (default 1) and three
-- Sentinels that monitor it as "mymaster" (quorum 2, down after 1 s), on
-- free ports of 127.0.0.1; returns once every Sentinel names the master and
-- knows the replicas and the other Sentinels (bounded: raises with the logs
-- otherwise). opts: `password` (the data nodes' requirepass and the
-- Sentinels' auth-pass), `sentinel_password` (the Sentinels' own requirepass).
-- set.master, set.replicas[i], set.sentinels[i] (servers as `start` makes),
-- set.url ("redis+sentinel://[:pw@]127.0.0.1:p1,.../mymaster"), set.name.
function M.start_sentinel(opts)
  opts = opts or {}
  local self = setmetatable({ name = MASTER_NAME, replicas = {}, sentinels = {}, password = opts.password,
                              sentinel_password = opts.sentinel_password }, Sentinel)
  local ok, err = pcall(function()
    -- (no delay before a replica's first sync: Redis waits 5 s by default for more replicas to join)
    local sync = { "--repl-diskless-sync-delay", "0" }
    local margs = { sync[1], sync[2] }
    if opts.password then margs[3], margs[4] = "--masterauth", opts.password end
    -- (with TLS, replicas reach their master and Sentinel reaches every node over TLS, and a
    -- replica tells its TLS port, so that Sentinel names it by that port once it is promoted)
    if opts.tls then margs[#margs + 1], margs[#margs + 2] = "--tls-replication", "yes" end
    self.master = M.start { password = opts.password, args = margs, tls = opts.tls }
    for i = 1, opts.replicas or 1 do
      local args = { "--replicaof", "127.0.0.1", tostring(self.master:client_port()), sync[1], sync[2] }
      if opts.password then args[#args + 1] = "--masterauth" args[#args + 1] = opts.password end
      local tls_port = opts.tls and process.free_port()
      if tls_port then
        for _, a in ipairs { "--tls-replication", "yes", "--replica-announce-port", tostring(tls_port) } do
          args[#args + 1] = a
        end
      end
      self.replicas[i] = M.start { password = opts.password, args = args, tls = opts.tls, tls_port = tls_port }
    end
    local list = {}
    for i = 1, 3 do
      local port, tls_port = process.free_port(), opts.tls and process.free_port()
      local conf = { "port " .. port, "bind 127.0.0.1", "daemonize no",
        "sentinel monitor " .. MASTER_NAME .. " 127.0.0.1 " .. self.master:client_port() .. " 2",
        "sentinel down-after-milliseconds " .. MASTER_NAME .. " 1000",
        "sentinel failover-timeout " .. MASTER_NAME .. " 5000" }
      if opts.password then conf[#conf + 1] = "sentinel auth-pass " .. MASTER_NAME .. " " .. opts.password end
      if opts.sentinel_password then conf[#conf + 1] = "requirepass " .. opts.sentinel_password end
      if tls_port then
        for _, line in ipairs { "tls-port " .. tls_port, "tls-cert-file " .. opts.tls.dir .. "/server.pem",
                                "tls-key-file " .. opts.tls.dir .. "/server.key", "tls-ca-cert-file " .. opts.tls.ca,
                                "tls-replication yes", "tls-auth-clients no" } do
          conf[#conf + 1] = line
        end
      end
      local dir = temp_dir()
      conf[#conf + 1] = "dir " .. dir
      conf[#conf + 1] = "logfile " .. dir .. "/redis.log"
      local srv = setmetatable({ port = port, tls_port = tls_port or nil, dir = dir, password = opts.sentinel_password,
                                 sentinel_conf = table.concat(conf, "\n") .. "\n" }, Server)
      self.sentinels[i] = launch(srv)
      list[i] = "127.0.0.1:" .. srv:client_port()
    end
    local params = {}
    if opts.sentinel_password then params[#params + 1] = "sentinel_password=" .. opts.sentinel_password end
    if opts.tls then params[#params + 1] = "tls_ca_file=" .. opts.tls.ca end
    self.url = (opts.tls and "rediss" or "redis") .. "+sentinel://"
      .. (opts.password and (":" .. opts.password .. "@") or "") .. table.concat(list, ",") .. "/" .. MASTER_NAME
      .. (#params > 0 and "?" .. table.concat(params, "&") or "")
    self:settle()
  end)
  if not ok then
    self:stop()
    error(err, 2)
  end
  return self
end

--- Every server of the set: the master, the replicas, the Sentinels.
function Sentinel:servers()
  local out = { self.master }
  for _, r in ipairs(self.replicas) do out[#out + 1] = r end
  for _, s in ipairs(self.sentinels) do out[#out + 1] = s end
  return out
end

--- The port Sentinel i (default 1) names for the master, or nil.
function Sentinel:master_port(i)
  local out = self.sentinels[i or 1]:cli("SENTINEL", "get-master-addr-by-name", MASTER_NAME)
  return tonumber(out:match("\n(%d+)$"))
end

--- Waits (bounded) until every Sentinel names the master at `port` (default
-- the set's master's) and knows its replicas and the two other Sentinels,
-- and every replica that runs is in sync with it (master_link_status:up).
function Sentinel:settle(port, seconds)
  port = port or self.master:client_port()
  local want = #self.replicas
  wait_for(self, function()
    for _, r in ipairs(self.replicas) do
      if r.running and not r:cli("INFO", "replication"):find("master_link_status:up", 1, true) then return false end
    end
    for i, s in ipairs(self.sentinels) do
      if self:master_port(i) ~= port then return false end
      local m = s:cli("SENTINEL", "master", MASTER_NAME)
      if tonumber(m:match("num%-slaves\n(%d+)")) ~= want or tonumber(m:match("num%-other%-sentinels\n(%d+)")) ~= 2
          or not m:match("flags\nmaster\n") then
        return false
      end
    end
    return true
  end, function() return "the Sentinels did not settle on the master at 127.0.0.1:" .. port end, seconds)
end

--- The server (the master, or a replica) listening on `port`.
function Sentinel:server_on(port)
  for _, srv in ipairs(self:servers()) do if srv:client_port() == port then return srv end end
end

--- A failover: `how` "kill" (kill -9 the master: the Sentinels find it down
-- after 1 s) or "command" (SENTINEL FAILOVER: the master demoted in order).
-- Waits (bounded) until every Sentinel names a new master, which becomes
-- set.master (the old one in set.replicas, dead after a kill: `restart` it
-- and Sentinel makes it a replica); returns the old master.
function Sentinel:failover(how)
  local old = self.master
  if how == "kill" then old:kill() else
    local out = self.sentinels[1]:cli("SENTINEL", "FAILOVER", MASTER_NAME)
    if out ~= "OK" then error("SENTINEL FAILOVER: " .. out, 2) end
  end
  local new
  wait_for(self, function()
    local p = self:master_port(1)
    if p == nil or p == old:client_port() then return false end
    for i = 2, #self.sentinels do if self:master_port(i) ~= p then return false end end
    new = self:server_on(p)
    return new ~= nil and new:cli("ROLE"):match("^master") ~= nil
  end, function() return "no new master after a failover (" .. tostring(how) .. ")" end, 30)
  for i, r in ipairs(self.replicas) do if r == new then self.replicas[i] = old end end
  self.master = new
  return old
end

--- Stops every server and removes their directories.
function Sentinel:stop()
  for _, s in ipairs(self.sentinels) do s:stop() end
  for _, r in ipairs(self.replicas) do r:stop() end
  if self.master then self.master:stop() end
  return true
end

-- ---- Inside nginx

--- An nginx driver (spec/helpers/nginx.lua start_driver, `locations = {
-- ["/set"] = "set" }`): GET /set?which=W&k=K&v=V sets K to V and reads it
-- back by a script, through a connection made at W's first call from the
-- environment's URL_<W upper-cased>; it answers { result, err
-- ("message|reason"), address } as JSON (a URL refused: result "nil" and
-- the message).
M.SET_DRIVER = [==[
local cjson = require "cjson"
local R = require "streamctl.store.redisconn"
local M = {}
local conns = {}
local script = R.script("redis.call('SET', KEYS[1], ARGV[1]) return redis.call('GET', KEYS[1])")
function M.set()
  local which = ngx.var.arg_which
  local conn = conns[which]
  if not conn then
    local err
    conn, err = R.connect(os.getenv("URL_" .. which:upper()))
    if not conn then return ngx.say(cjson.encode { result = "nil", err = tostring(err.message) }) end
    conns[which] = conn
  end
  local res, e = conn:eval(script, { ngx.var.arg_k }, { ngx.var.arg_v })
  ngx.say(cjson.encode { result = res or "nil", err = e and (e.message .. "|" .. e.reason) or "",
                         address = conn:address() })
end
return M
]==]

--- What SET_DRIVER answered for `which`, `k` and `v` on nginx `web` (200, decoded).
function M.driver_set(web, which, k, v)
  local status, body = web:get("/set?which=" .. which .. "&k=" .. k .. "&v=" .. v)
  assert(status == 200, "GET /set: " .. tostring(status) .. " " .. tostring(body))
  return require("cjson").decode(body)
end

return M
