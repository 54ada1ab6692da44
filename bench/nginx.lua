-- Requests per second through one nginx worker (streamctl's cosocket
-- transport, inside a content handler) beside the same batch from plain Lua
-- (the libcurl transport), both against the emulator that `make bench`
-- started (bench/emulator.json: account LTAIbench, ResumeLiveStream not
-- limited), with pacing off on the client, over HTTP and over verified HTTPS
-- with kept-alive connections. Figures, not a test.
local core = require "streamctl.core"
local nginx = require "spec.helpers.nginx"
local cjson = require "cjson"

local N = tonumber(os.getenv("BENCH_CALLS") or "2000")
local CONCURRENCY = 16
local dir = assert(os.getenv("STREAMCTL_EMULATOR_DIR"), "STREAMCTL_EMULATOR_DIR is not set")
local ENDPOINTS = { http = "http://127.0.0.1:38080", https = "https://127.0.0.1:38443" }
local CA = dir .. "/ca.pem"

local function names(prefix)
  local list = {}
  for i = 1, N do list[i] = prefix .. i end
  return list
end

-- The batch both sides run: N resumes, CONCURRENCY in flight, unpaced.
local BATCH = [==[
local streamctl = require "streamctl"
local M = {}
function M.run(endpoint, ca_file, stream_names, concurrency, transport)
  local ali = assert(streamctl.aliyun.new { endpoint = endpoint, ca_file = ca_file, access_key_id = "LTAIbench",
    access_key_secret = "bench-secret", rate_limits = false, retry = false, transport = transport })
  local report = assert(ali:resume_live_streams { domain_name = "bench.example", app_name = "live",
                                                   stream_names = stream_names, concurrency = concurrency })
  ali:close()
  return report
end
return M
]==]

local HANDLER = [==[
local cjson = require "cjson"
local batch = require "bench_batch"
return function()
  local args = ngx.req.get_uri_args()
  local list = {}
  for i = 1, tonumber(args.n) do list[i] = args.prefix .. i end
  ngx.update_time()
  local t0 = ngx.now()
  local report = batch.run(args.endpoint, args.ca, list, tonumber(args.c))
  ngx.update_time()
  ngx.say(cjson.encode { seconds = ngx.now() - t0, succeeded = report.succeeded })
end
]==]

local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

local server = nginx.start {
  prepare = function(d)
    write(d .. "/bench_batch.lua", BATCH)
    write(d .. "/bench_handler.lua", HANDLER)
  end,
  lua_path = function(d) return d .. "/?.lua" end,
  lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
  http = function(ports)
    return "lua_ssl_trusted_certificate " .. nginx.conf_quoted(CA) .. ";\n"
      .. "    server { listen 127.0.0.1:" .. ports[1] .. ";\n"
      .. "      location = /run { content_by_lua_block { require('bench_handler')() } } }"
  end,
}

-- The same batch module, loaded here from the text nginx got.
local batch = assert(load(BATCH, "=bench_batch"))()

local ok, err = pcall(function()
  print(string.format("%-6s %-34s %6s %10s %12s", "scheme", "transport", "calls", "seconds", "requests/s"))
  for _, scheme in ipairs { "http", "https" } do
    local endpoint = ENDPOINTS[scheme]
    local prefix = scheme .. "-" .. math.floor(core.now())
    -- nginx: one worker, cosockets
    local status, body = server:get(string.format("/run?n=%d&c=%d&prefix=%s&endpoint=%s&ca=%s", N, CONCURRENCY,
      prefix .. "-ngx-", endpoint, CA))
    assert(status == 200, "the nginx side answered " .. tostring(status) .. ": " .. tostring(body))
    local r = cjson.decode(body)
    assert(r.succeeded == N, "the nginx side: " .. r.succeeded .. " of " .. N .. " succeeded")
    print(string.format("%-6s %-34s %6d %10.3f %12.0f", scheme, "nginx, 1 worker (cosockets)", N, r.seconds,
      N / r.seconds))
    -- plain Lua, libcurl
    local t0 = core.monotonic()
    local report = batch.run(endpoint, scheme == "https" and CA or nil, names(prefix .. "-curl-"), CONCURRENCY, "curl")
    local seconds = core.monotonic() - t0
    assert(report.succeeded == N, "the libcurl side: " .. report.succeeded .. " of " .. N .. " succeeded")
    print(string.format("%-6s %-34s %6d %10.3f %12.0f", scheme, _VERSION .. " (libcurl multi)", N, seconds,
      N / seconds))
  end
end)
server:stop()
assert(ok, err)
