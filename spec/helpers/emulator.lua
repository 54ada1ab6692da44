-- Test helper: runs the streamctl emulator for a spec and talks to its control
-- endpoints. Plain Lua (5.1/LuaJIT and 5.4), luasocket for HTTP, cjson for JSON.
--
--   local emu = require "spec.helpers.emulator"
--   local server
--   lazy_setup(function()
--     server = emu.start{
--       dir = nil,                                  -- default: a fresh temp dir, removed by
--                                                   -- :stop() unless keep_dir = true
--       ports = nil,                                -- default: free ports (or { aliyun = 28080, ... })
--       config = { aliyun = { accounts = { testid = "testsecret" } } },  -- written as JSON
--       imds = nil,                                 -- true: also serve the ECS metadata service
--                                                   -- on a free port (--imds-port)
--       imds_listen = nil,                          -- or "ADDR:PORT" (--imds-listen)
--     }
--   end)
--   lazy_teardown(function() if server then server:stop() end end)
--
--   server.aliyun_url, server.zego_url             "http://127.0.0.1:<port>"
--   server.aliyun_tls_url, server.zego_tls_url     "https://127.0.0.1:<port>"
--   server.ca_file, server.dir, server.ports
--   server.imds_url                "http://<addr>:<port>" when imds/imds_listen was given
--   server:reset()                 POST /_emulator/reset
--   server:state()                 GET  /_emulator/state (decoded)
--   server:log(query)              GET  /_emulator/log?... -> entries (list), whole answer
--   server:faults(spec)            POST /_emulator/faults (spec: table or list); nil -> GET
--   server:clear_faults()          DELETE /_emulator/faults
--   server:clock(spec)             POST /_emulator/clock ({now=..}|{offset=..}|{}); nil -> GET
--   server:online(spec, method)    POST /_emulator/online (spec: one {domain,app,stream} or a list);
--                                  method "DELETE" takes them offline (spec nil: all); nil spec -> GET
--   server:credentials()           GET  /_emulator/credentials (decoded)
--   server:oidc_token(spec)        POST /_emulator/oidc_token -> the decoded answer ({token, claims, ...})
--   server:imds_mode(spec)         POST /_emulator/imds ({hardened = bool}); nil -> GET
--   server:stop()                  streamctl-emulator stop (idempotent)
--   emu.launcher(args, env)        runs emulator/bin/streamctl-emulator args (env: more variables) -> ok, output, code
--   server:request{ method, url | provider+path, headers, body } -> status, body, headers, err
--                                  (plain HTTP only; luasocket has no TLS here)
--   server:control(method, path, value, provider) -> decoded JSON, status
--
-- Independent signing for hand-built requests (openssl CLI, see below):
--   emu.v1_request{...}, emu.v1_signature, emu.v3_sign{...}, emu.zego_query{...}, emu.next_sequence,
--   emu.zego_signature, emu.pct, emu.query, emu.iso8601, emu.nonce, emu.sorted_keys,
--   emu.md5_hex, emu.sha256_hex, emu.hmac_sha1_base64, emu.hmac_sha256_hex
--   (the last four are spec/helpers/openssl.lua's)
--
-- emu.start raises with the launcher's output when the server does not come up.

local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local openssl = require "spec.helpers.openssl"

local emu = {}

-- The port names emu.start knows (the numbers are the launcher's defaults;
-- specs get free ports unless they name their own).
emu.DEFAULT_PORTS = { aliyun = 18080, zego = 18081, aliyun_tls = 18443, zego_tls = 18444 }

--- `n` distinct ports on 127.0.0.1 that nothing listens on now, from this
-- spec process's own block (spec/helpers/ports.lua: below the ephemeral
-- range, never another spec's).
function emu.free_ports(n)
  return require("spec.helpers.ports").free(n)
end

local shell_quote = openssl.shell_quote

-- os.execute: 5.1/LuaJIT return the raw wait status, 5.2+ ok, "exit", code.
local function run(cmd)
  local a, _, c = os.execute(cmd)
  if type(a) == "number" then
    if a > 255 then
      a = math.floor(a / 256)
    end
    return a == 0, a
  end
  return a == true, c
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then
    return nil
  end
  local s = f:read("*a")
  f:close()
  return s
end

-- The repository root: $STREAMCTL_ROOT, else two levels above this file.
local function repo_root()
  local env = os.getenv("STREAMCTL_ROOT")
  if env and env ~= "" then
    return env
  end
  local src = debug.getinfo(1, "S").source
  local file = src:sub(1, 1) == "@" and src:sub(2) or ""
  local dir = file:match("^(.*)/spec/helpers/[^/]*$")
  if not dir or dir == "" then
    return "."
  end
  return dir
end

emu.root = repo_root()

-- The interpreter to run emulator/bin/streamctl-emulator with: $STREAMCTL_LUA, else the
-- one running this spec.
function emu.interpreter()
  local env = os.getenv("STREAMCTL_LUA")
  if env and env ~= "" then
    return env
  end
  if rawget(_G, "jit") then
    return "luajit"
  end
  local v = _VERSION:match("Lua (%d+%.%d+)")
  return v and ("lua" .. v) or "lua"
end

-- Runs the launcher; returns ok, output, exit status. env (optional): more
-- variables for it, name -> value.
function emu.launcher(args, env)
  local root = emu.root
  local out = os.tmpname()
  local vars = {}
  for k, v in pairs(env or {}) do
    vars[#vars + 1] = k .. "=" .. shell_quote(v) .. " "
  end
  table.sort(vars)
  local cmd = table.concat(vars) .. "LUA_PATH=" .. shell_quote(root .. "/src/?.lua;" .. root .. "/src/?/init.lua;"
    .. root .. "/emulator/src/?.lua;" .. root .. "/emulator/src/?/init.lua;;")
    .. " " .. emu.interpreter() .. " " .. shell_quote(root .. "/emulator/bin/streamctl-emulator")
    .. " " .. args .. " >" .. shell_quote(out) .. " 2>&1"
  local ok, code = run(cmd)
  local text = read_file(out) or ""
  os.remove(out)
  return ok, text, code
end

local function temp_dir()
  local name = os.tmpname()
  os.remove(name)
  assert(run("mkdir -p " .. shell_quote(name)), "cannot create " .. name)
  return name
end

local Server = {}
Server.__index = Server

-- The emulator stands for a service on other machines, whose clock no load
-- here delays: its nginx (master and workers) runs ahead of the specs'
-- clients where this process may raise it (root), so a busy machine moves
-- its arrival times as little as it can. Its rate limits count arrivals as
-- it reads them: a worker kept waiting reads a queue at once, compressed,
-- and counts more in a second than were sent in one (a throttle no client
-- caused: four busy loops beside the suite made them). So the round-robin
-- real-time class at its lowest priority where the kernel allows it (it
-- then runs whenever it has work; the kernel's real-time throttling,
-- sched_rt_runtime_us, leaves the rest of the machine 5% whatever it
-- does), else nice -5.
local function ahead(dir)
  local f = io.open(dir .. "/nginx.pid", "rb")
  local master = f and tonumber((f:read("*a") or ""):match("%d+"))
  if f then f:close() end
  if not master then return end
  -- (without the sanitizer's LD_PRELOAD, under which pgrep never returns)
  run("env -u LD_PRELOAD sh -c " .. shell_quote("[ \"$(id -u)\" = 0 ] || exit 0; pids=\"" .. master
    .. " $(pgrep -P " .. master .. ")\"; for p in $pids; do chrt --rr -p 1 $p || renice -n -5 -p $p; done "
    .. ">/dev/null 2>&1"))
end

function emu.start(opts)
  opts = opts or {}
  local ports = {}
  -- Ports not asked for are free ones, so runs never collide with each other
  -- or with an emulator the user has running.
  local free = emu.free_ports(5)
  for k in pairs(emu.DEFAULT_PORTS) do
    ports[k] = (opts.ports and opts.ports[k]) or table.remove(free)
  end
  local imds_host, imds_port
  if opts.imds_listen then
    imds_host, imds_port = opts.imds_listen:match("^(.*):(%d+)$")
    imds_port = tonumber(imds_port)
  elseif opts.imds then
    imds_host, imds_port = "127.0.0.1", (opts.ports and opts.ports.imds) or table.remove(free)
  end
  ports.imds = imds_port
  local own_dir = opts.dir == nil and not opts.keep_dir
  local dir = opts.dir or temp_dir()
  assert(run("mkdir -p " .. shell_quote(dir)), "cannot create " .. dir)
  local args = { "start", "--dir", shell_quote(dir),
    "--aliyun-port", ports.aliyun, "--zego-port", ports.zego,
    "--aliyun-tls-port", ports.aliyun_tls, "--zego-tls-port", ports.zego_tls }
  if opts.imds_listen then
    args[#args + 1] = "--imds-listen " .. shell_quote(opts.imds_listen)
  elseif opts.imds then
    args[#args + 1] = "--imds-port " .. imds_port
  end
  if opts.config then
    local path = dir .. "/config.json"
    local f = assert(io.open(path, "wb"))
    f:write(cjson.encode(opts.config))
    f:close()
    args[#args + 1] = "--config"
    args[#args + 1] = shell_quote(path)
  end
  local ok, output = emu.launcher(table.concat(args, " "))
  if not ok then
    error("streamctl-emulator start failed:\n" .. output, 2)
  end
  ahead(dir)
  local self = setmetatable({
    start_args = table.concat(args, " "),
    dir = dir,
    ports = ports,
    output = output,
    aliyun_url = "http://127.0.0.1:" .. ports.aliyun,
    zego_url = "http://127.0.0.1:" .. ports.zego,
    aliyun_tls_url = "https://127.0.0.1:" .. ports.aliyun_tls,
    zego_tls_url = "https://127.0.0.1:" .. ports.zego_tls,
    ca_file = dir .. "/ca.pem",
    imds_url = imds_port and ("http://" .. imds_host .. ":" .. imds_port) or nil,
    running = true,
    own_dir = own_dir,
  }, Server)
  return self
end

-- One HTTP request. spec: { method = "GET", url = "http://..." or
-- provider = "aliyun"|"zego" and path = "/?...", headers = {}, body = "" }.
-- Returns status (number or nil), body (string), headers (lowercased), err.
function Server:request(spec)
  local url = spec.url or ((spec.provider == "zego" and self.zego_url or self.aliyun_url) .. (spec.path or "/"))
  local chunks = {}
  local headers = {}
  for k, v in pairs(spec.headers or {}) do
    headers[k] = v
  end
  local source
  if spec.body then
    source = ltn12.source.string(spec.body)
    headers["content-length"] = headers["content-length"] or tostring(#spec.body)
  end
  local ok, status, rheaders = http.request({
    url = url,
    method = spec.method or "GET",
    headers = headers,
    source = source,
    sink = ltn12.sink.table(chunks),
    redirect = false,
  })
  if not ok then
    return nil, table.concat(chunks), nil, status
  end
  return status, table.concat(chunks), rheaders or {}
end

-- A control request; returns the decoded JSON answer and the status.
function Server:control(method, path, value, provider)
  local body
  if value ~= nil then
    body = cjson.encode(value)
  end
  local status, text, _, err = self:request({
    method = method, provider = provider or "aliyun", path = "/_emulator/" .. path, body = body,
    headers = body and { ["content-type"] = "application/json" } or nil,
  })
  if not status then
    error("emulator control " .. method .. " " .. path .. " failed: " .. tostring(err), 2)
  end
  local ok, decoded = pcall(cjson.decode, text)
  if not ok then
    error("emulator control " .. path .. " answered " .. tostring(status) .. " non-JSON: " .. text, 2)
  end
  return decoded, status
end

function Server:reset()
  return self:control("POST", "reset", {})
end

function Server:state()
  return self:control("GET", "state")
end

local function query_string(q)
  if not q then
    return ""
  end
  local parts = {}
  for k, v in pairs(q) do
    parts[#parts + 1] = k .. "=" .. tostring(v)
  end
  table.sort(parts)
  return #parts > 0 and ("?" .. table.concat(parts, "&")) or ""
end

function Server:log(q)
  local answer = self:control("GET", "log" .. query_string(q))
  return answer.entries, answer
end

function Server:faults(spec, provider)
  if spec == nil then
    return self:control("GET", "faults")
  end
  return self:control("POST", "faults", spec, provider)
end

function Server:clear_faults()
  return self:control("DELETE", "faults")
end

function Server:clock(spec)
  if spec == nil then
    return self:control("GET", "clock")
  end
  return self:control("POST", "clock", spec)
end

function Server:online(spec, method)
  if spec == nil and method == nil then
    return self:control("GET", "online")
  end
  return self:control(method or "POST", "online", spec)
end

function Server:credentials()
  return self:control("GET", "credentials")
end

function Server:oidc_token(spec)
  return self:control("POST", "oidc_token", spec or {})
end

function Server:imds_mode(spec)
  if spec == nil then
    return self:control("GET", "imds")
  end
  return self:control("POST", "imds", spec)
end

-- Stops the emulator and starts it again on the same ports and directory
-- (certificates kept, state and log gone, as after a crash and a restart).
function Server:restart()
  local ok, output = emu.launcher("stop --dir " .. shell_quote(self.dir))
  assert(ok, "streamctl-emulator stop failed:\n" .. output)
  ok, output = emu.launcher(self.start_args)
  assert(ok, "streamctl-emulator start failed:\n" .. output)
  ahead(self.dir)
  self.running = true
  return true
end

function Server:stop()
  if not self.running then
    return true
  end
  local ok, output = emu.launcher("stop --dir " .. shell_quote(self.dir))
  self.running = not ok
  if ok and self.own_dir then
    run("rm -rf " .. shell_quote(self.dir))
  end
  return ok, output
end

-------------------------------------------------------------------------------
-- Independent signing for hand-built requests: digests come from the openssl
-- CLI (spec/helpers/openssl.lua), encodings are written here. Neither the
-- emulator's code nor streamctl's core is involved, so a spec using these checks
-- one against a third party.

emu.md5_hex = openssl.md5_hex
emu.sha256_hex = openssl.sha256_hex
emu.hmac_sha1_base64 = openssl.hmac_sha1_base64
emu.hmac_sha256_hex = openssl.hmac_sha256_hex

-- Alibaba Cloud percent-encoding (only A-Za-z0-9-_.~ literal, uppercase %XY).
-- The account UID the emulator gives an Aliyun key configured without an
-- "account" (its own account, derived from the AccessKeyId: identity.lua),
-- which a client without account_id learns from STS and keys its budget by.
function emu.aliyun_uid(access_key_id)
  return require("streamctl.emulator.identity").digits("uid:" .. access_key_id, 16, "1")
end

function emu.pct(s)
  return (tostring(s):gsub("[^%w%-_%.~]", function(c)
    return string.format("%%%02X", c:byte())
  end))
end

function emu.iso8601(t)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", math.floor(t))
end

local nonce_counter = 0

-- A fresh nonce for hand-built requests.
function emu.nonce()
  nonce_counter = nonce_counter + 1
  return string.format("spec-%d-%d-%d", os.time(), math.random(1, 1e9), nonce_counter)
end

-- The keys of a table, sorted.
function emu.sorted_keys(t)
  local names = {}
  for k in pairs(t) do
    names[#names + 1] = k
  end
  table.sort(names)
  return names
end

-- A percent-encoded query string of params (sorted, Aliyun encoding).
function emu.query(params)
  local parts = {}
  for _, k in ipairs(emu.sorted_keys(params)) do
    parts[#parts + 1] = emu.pct(k) .. "=" .. emu.pct(params[k])
  end
  return table.concat(parts, "&")
end

-- Signature V1 over params (name -> value, without Signature) for method.
-- Returns the signature and the string to sign.
function emu.v1_signature(method, params, secret)
  local sts = method .. "&%2F&" .. emu.pct(emu.query(params))
  return openssl.hmac_sha1_base64(secret .. "&", sts), sts
end

-- A complete V1 request for an ApsaraVideo Live action with the common
-- parameters filled in. opts: { action, params, key, secret, method, time,
-- nonce, format }. Returns the query string (Signature last) and the params.
function emu.v1_request(opts)
  local p = {
    Action = opts.action,
    Version = opts.version or "2016-11-01",
    Format = opts.format or "JSON",
    AccessKeyId = opts.key or "LTAIemulatorKey",
    SignatureMethod = "HMAC-SHA1",
    SignatureVersion = "1.0",
    SignatureNonce = opts.nonce or emu.nonce(),
    Timestamp = emu.iso8601(opts.time or os.time()),
  }
  for k, v in pairs(opts.params or {}) do
    p[k] = v
  end
  local sig = emu.v1_signature(opts.method or "POST", p, opts.secret or "emulator-secret")
  return emu.query(p) .. "&Signature=" .. emu.pct(sig), p
end

-- V3 (ACS3-HMAC-SHA256) headers for a request. opts: { method, path, query
-- (name -> value), headers (lowercase name -> value; host and x-acs-* here),
-- body, key, secret }. Returns the headers with Authorization added, the
-- canonical request and the string to sign.
function emu.v3_sign(opts)
  local headers = {}
  for k, v in pairs(opts.headers) do
    headers[k] = v
  end
  local body = opts.body or ""
  local body_hash = openssl.sha256_hex(body)
  headers["x-acs-content-sha256"] = headers["x-acs-content-sha256"] or body_hash
  local names = {}
  for k in pairs(headers) do
    if k:sub(1, 6) == "x-acs-" or k == "host" or k == "content-type" then
      names[#names + 1] = k
    end
  end
  table.sort(names)
  local canon_headers = {}
  for i, k in ipairs(names) do
    canon_headers[i] = k .. ":" .. headers[k] .. "\n"
  end
  local signed = table.concat(names, ";")
  local canonical = table.concat({
    opts.method or "POST", opts.path or "/", emu.query(opts.query or {}),
    table.concat(canon_headers), signed, body_hash,
  }, "\n")
  local sts = "ACS3-HMAC-SHA256\n" .. openssl.sha256_hex(canonical)
  local sig = openssl.hmac_sha256_hex(opts.secret or "emulator-secret", sts)
  headers["authorization"] = "ACS3-HMAC-SHA256 Credential=" .. (opts.key or "LTAIemulatorKey")
    .. ",SignedHeaders=" .. signed .. ",Signature=" .. sig
  return headers, canonical, sts
end

-- ZEGO signature: lowercase hex MD5(AppId .. nonce .. secret .. timestamp).
function emu.zego_signature(app_id, nonce, secret, timestamp)
  return openssl.md5_hex(tostring(app_id) .. nonce .. secret .. tostring(timestamp))
end

-- The actions whose Sequence ZEGO requires (RTC forbid and resume, single and batch).
local SEQUENCED = { ForbidRTCStream = true, ResumeRTCStream = true, ForbidRTCStreams = true, ResumeRTCStreams = true }

local last_sequence = 0

-- A Sequence larger than every one emu.next_sequence gave before (milliseconds
-- of the wall clock, or the last plus one).
function emu.next_sequence()
  last_sequence = math.max(last_sequence + 1, math.floor(os.time() * 1000))
  return string.format("%d", last_sequence)
end

-- A complete ZEGO query string. opts: { action, app_id, secret, time, nonce,
-- params (name -> value), streams (list for StreamId[]), is_test, sequence }.
-- The RTC forbid/resume actions get a fresh Sequence (emu.next_sequence)
-- unless params has one or sequence is false.
function emu.zego_query(opts)
  local app_id = opts.app_id or "1234567890"
  local ts = math.floor(opts.time or os.time())
  local nonce = opts.nonce or string.format("%08x%08x", math.random(0, 0x7fffffff), nonce_counter)
  nonce_counter = nonce_counter + 1
  local sig = emu.zego_signature(app_id, nonce, opts.secret or "0123456789abcdef0123456789abcdef", ts)
  local parts = {
    "Action=" .. opts.action, "AppId=" .. app_id, "SignatureNonce=" .. nonce,
    "Timestamp=" .. ts, "Signature=" .. sig, "SignatureVersion=2.0",
  }
  if opts.is_test ~= nil then
    parts[#parts + 1] = "IsTest=" .. tostring(opts.is_test)
  end
  for _, id in ipairs(opts.streams or {}) do
    parts[#parts + 1] = "StreamId[]=" .. emu.pct(id)
  end
  local params = opts.params or {}
  for _, k in ipairs(emu.sorted_keys(params)) do
    parts[#parts + 1] = emu.pct(k) .. "=" .. emu.pct(params[k])
  end
  if SEQUENCED[opts.action] and params.Sequence == nil and opts.sequence ~= false then
    parts[#parts + 1] = "Sequence=" .. emu.next_sequence()
  end
  return table.concat(parts, "&")
end

--- Whether this process can send a burst timed to the emulator's 1 s
-- rate-limit windows, which count real arrivals (the limiters' clock is never
-- the pinnable emulator clock): not under valgrind or ASan (their runtime
-- preloaded: spec.helpers.process.preloaded), which slow this process many
-- times, so that on a busy machine even eight pre-built requests can take
-- over a second; and the limits are the emulator's own, nginx-lua, which
-- neither runs. A check that needs such a burst is pending there
-- (`pending(emu.TIMED_BURSTS)`), and made in the Lua 5.4 and LuaJIT phases.
function emu.timed_bursts()
  return not require("spec.helpers.process").preloaded()
end

emu.TIMED_BURSTS = "a burst timed to a 1 s window: checked in the Lua 5.4 and LuaJIT phases (the limits are nginx-lua's)"

return emu
