-- The OpenResty example as the edge specs start it (spec/edge/31, 42):
-- its nginx.conf rewritten only where a spec must, started against an
-- emulator, and HTTP from the spec's process, every request on its own
-- connection.
--
--   local edge = require "spec.helpers.edge"
--   local e = edge.start_edge(emulator, { env = { ... }, workers = 4 })   -- e.ports[1]
--   edge.post(port, path, body, token), edge.get(port, path), edge.concurrently(port, raws, limit)
local cjson = require "cjson"
local socket = require "socket"
local nginx = require "spec.helpers.nginx"

local M = {}

local ROOT = nginx.root
local TOKEN = "edge-token-0123456789abcdef"
local ISSUER_TOKEN = "edge-issuer-token-fedcba9876543210" -- (/tokens/zego's Bearer, apart from the moderation API's)
local ALI_KEY, ALI_SECRET = "LTAIemulatorKey", "emulator-secret"
local ZEGO_APP, ZEGO_SECRET = "1234567890", "0123456789abcdef0123456789abcdef"
M.TOKEN, M.ALI_KEY, M.ALI_SECRET, M.ZEGO_APP, M.ZEGO_SECRET = TOKEN, ALI_KEY, ALI_SECRET, ZEGO_APP, ZEGO_SECRET
M.ISSUER_TOKEN = ISSUER_TOKEN

-------------------------------------------------------------------------------
-- HTTP from this process: every request on its own connection, all at once
-- (HTTP/1.0, read until the server closes), bounded by `limit` seconds.

local function raw_request(method, path, body, headers)
  local lines = { method .. " " .. path .. " HTTP/1.0", "Host: 127.0.0.1" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  return table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

local function parse(raw)
  local head, body = raw:match("^(.-)\r\n\r\n(.*)$")
  if not head then return { raw = raw } end
  local status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  local headers = {}
  for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
  return { status = status, headers = headers, body = body }
end

local function concurrently(port, requests, limit)
  local pending, parts, n = {}, {}, 0
  for i, raw in ipairs(requests) do
    local s = socket.tcp()
    s:settimeout(5)
    assert(s:connect("127.0.0.1", port))
    assert(s:send(raw))
    s:settimeout(0)
    pending[s], parts[i], n = i, {}, n + 1
  end
  local deadline = socket.gettime() + require("spec.helpers.process").patience(limit)
  while n > 0 and socket.gettime() < deadline do
    local list = {}
    for s in pairs(pending) do list[#list + 1] = s end
    local readable = socket.select(list, nil, 0.25)
    for _, s in ipairs(readable) do
      local data, err, partial = s:receive(65536)
      local chunk = data or partial
      if chunk and chunk ~= "" then table.insert(parts[pending[s]], chunk) end
      if err == "closed" then
        s:close()
        pending[s], n = nil, n - 1
      end
    end
  end
  for s in pairs(pending) do s:close() end
  local out = {}
  for i = 1, #requests do out[i] = parse(table.concat(parts[i])) end
  return out
end

local function post(port, path, body, token)
  local headers = { ["Content-Type"] = "application/json" }
  if token then headers.Authorization = "Bearer " .. token end
  return concurrently(port, { raw_request("POST", path, body, headers) }, 30)[1]
end

local function get(port, path)
  return concurrently(port, { raw_request("GET", path) }, 30)[1]
end

local function decode(res)
  local ok, v = pcall(cjson.decode, res.body or "")
  assert(ok, "not JSON (HTTP " .. tostring(res.status) .. "): " .. tostring(res.body or res.raw))
  return v
end

-------------------------------------------------------------------------------
-- The example's nginx.conf, rewritten only where a spec must: its ports, its
-- paths, the CA, and what runs a throw-away nginx (daemon off, user root).
-- Each rewrite must match exactly once, so a change to the example that
-- this spec does not follow fails here.

local function rewrite(text, from, to)
  local i, j = text:find(from, 1, true)
  assert(i, "examples/openresty/nginx.conf no longer has: " .. from)
  assert(not text:find(from, j + 1, true), "examples/openresty/nginx.conf has more than one: " .. from)
  return text:sub(1, i - 1) .. to .. text:sub(j + 1)
end

local function example_conf(port, dir, ca_file, workers)
  local q = nginx.conf_quoted
  local text = assert(nginx.read_file(ROOT .. "/examples/openresty/nginx.conf"), "examples/openresty/nginx.conf missing")
  text = rewrite(text, "worker_processes auto;", (nginx.as_root() and "user root;\n" or "")
    .. "daemon off;\nworker_processes " .. (workers or 1) .. ";")
  text = rewrite(text, "error_log logs/error.log info;", "error_log " .. q(dir .. "/error.log") .. " info;")
  text = rewrite(text, "pid logs/nginx.pid;", "pid " .. q(dir .. "/nginx.pid") .. ";")
  text = rewrite(text, "access_log logs/access.log;", "access_log off;\n" .. nginx.temp_paths(dir))
  -- (the example names no Lua path: installed from the Debian packages,
  -- streamctl is where nginx-lua looks; here it is the checkout's)
  assert(not text:find("\n%s*lua_package_c?path"), "examples/openresty/nginx.conf names a Lua path")
  text = rewrite(text, "http {", "http {\n    lua_package_path " .. q(nginx.lua_path()) .. ";\n"
    .. "    lua_package_cpath " .. q(nginx.jit_cpath()) .. ";")
  text = rewrite(text, "resolver 127.0.0.53 ipv6=off;", "resolver 127.0.0.1 ipv6=off;") -- never used: IPs only
  text = rewrite(text, "lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;",
    "lua_ssl_trusted_certificate " .. q(ca_file) .. ";")
  text = rewrite(text, "listen 8080;", "listen 127.0.0.1:" .. port .. ";")
  return text
end

-- The edge from the example: `env` adds to the environment it starts with.
local function start_edge(emulator, opts)
  local env = {
    STREAMCTL_EDGE_TOKEN = TOKEN, STREAMCTL_EDGE_ISSUER_TOKEN = ISSUER_TOKEN,
    ALIBABA_CLOUD_ACCESS_KEY_ID = ALI_KEY, ALIBABA_CLOUD_ACCESS_KEY_SECRET = ALI_SECRET,
    ZEGO_APP_ID = ZEGO_APP, ZEGO_SERVER_SECRET = ZEGO_SECRET,
    STREAMCTL_ALIYUN_ENDPOINT = emulator.aliyun_tls_url, STREAMCTL_ZEGO_ENDPOINT = emulator.zego_tls_url,
    STREAMCTL_CA_FILE = opts.ca_file or emulator.ca_file,
  }
  for k, v in pairs(opts.env or {}) do env[k] = v end
  return nginx.start {
    env = env, ports = opts.ports,
    conf = function(ports, dir) return example_conf(ports[1], dir, opts.ca_file or emulator.ca_file, opts.workers) end,
  }
end


--- A callback's timestamp (whole seconds) whose window began after every
-- server started before this call, and so did the window of the one
-- `back` seconds (default 0) before it: a window (the callbacks' WINDOW_S)
-- ahead of the next whole second that far on, waited for (at most back +
-- 1 s). A replay store's memory never begins before its server's start
-- (issue 87): a callback whose window began earlier is refused, 503
-- ReplayStoreUnavailable.
function M.fresh_ts(back)
  local called = socket.gettime()
  local at = math.floor(called) + 1 + (back or 0)
  socket.sleep(at - called)
  while socket.gettime() < at do socket.sleep(0.01) end
  return math.floor(socket.gettime()) + require("streamctl.edge.callbacks").WINDOW_S
end

M.raw_request, M.parse, M.concurrently, M.post, M.get, M.decode = raw_request, parse, concurrently, post, get, decode
M.example_conf, M.start_edge = example_conf, start_edge

return M
