-- One independent client for spec/62 and spec/65: a process of its own acting
-- on the emulator's account through a shared Redis, printing its report as
-- one JSON line. What it says on standard error (the fallback's notices) the
-- spec reads from the file it was redirected to.
--
--   lua redis_worker.lua aliyun ENDPOINT REDIS_URL PREFIX COUNT [NAME=VALUE...]
--       resumes COUNT Aliyun streams PREFIX-1..PREFIX-COUNT (REDIS_URL "-": no Redis)
--   lua redis_worker.lua zego ENDPOINT REDIS_URL PREFIX COUNT ROUNDS [NAME=VALUE...]
--       resumes the ZEGO streams PREFIX-1..PREFIX-COUNT, ROUNDS times over
--   lua redis_worker.lua get URL
--       one GET (starts a batch in an nginx), its body printed
--   lua redis_worker.lua fill PORT PASSWORD EVICTED TTL STOP
--       a cache beside streamctl's keys: SETs keys "cache:N" (1 KB values, with
--       an expiry of TTL seconds unless TTL is 0) on 127.0.0.1:PORT, 50 at a
--       time 30 ms apart, until the file STOP is there and the server has
--       evicted EVICTED keys (at most 100000 keys; PASSWORD "-": none): events,
--       never a time, so a busy machine fills it as surely; then prints
--       { set =, errors =, last_error =, evicted = } as one JSON line
--
-- The options (spec/65): key=AccessKeyId and secret=its secret (Aliyun;
-- default the emulator's LTAIemulatorKey), account_id=UID (Aliyun),
-- max_rate=N (the client's max_rate: no action faster than N per second).
-- The report adds `seconds` (from the client's creation to the end),
-- `ended` (when it ended: Unix seconds, with fractions) and `policy` (the
-- maxmemory-policy its Redis connection read, when it has one).
local streamctl = require "streamctl"
local cjson = require "cjson"
local core = require "streamctl.core"

local mode = arg[1]

if mode == "get" then
  local curl = require "streamctl.curl"
  local easy = curl.easy { timeout_ms = 120000 }
  local res = assert(easy:request { method = "GET", url = arg[2], headers = {}, body = "" })
  easy:close()
  io.write(res.body, "\n")
  os.exit(res.status == 200 and 0 or 1)
end

if mode == "fill" then
  local hiredis = require "streamctl.redis"
  local sleep = require("streamctl.transport.curl").sleep
  local port, password, wanted, ttl, stop = tonumber(arg[2]), arg[3], tonumber(arg[4]), tonumber(arg[5]), arg[6]
  local c = assert(hiredis.connect("127.0.0.1", port, 2000))
  if password ~= "-" then assert(c:command("AUTH", password)) end
  local value = string.rep("x", 1000)
  local out = { set = 0, errors = 0, evicted = 0 }
  for n = 1, 100000 do
    if n % 50 == 0 then
      local stats = c:command("INFO", "stats")
      out.evicted = tonumber(type(stats) == "string" and stats:match("evicted_keys:(%d+)") or "") or out.evicted
      local told = io.open(stop)
      if told then told:close() end
      if told and out.evicted >= wanted then break end
      sleep(0.03)
    end
    local r, err, kind
    if ttl > 0 then
      r, err, kind = c:command("SET", "cache:" .. n, value, "EX", tostring(ttl))
    else
      r, err, kind = c:command("SET", "cache:" .. n, value)
    end
    if r == nil then
      out.errors, out.last_error = out.errors + 1, tostring(err)
      if kind == "io" then break end -- (the connection is gone)
    else
      out.set = out.set + 1
    end
  end
  c:close()
  io.write(cjson.encode(out), "\n")
  os.exit(0)
end

local endpoint, redis, prefix, count = arg[2], arg[3], arg[4], tonumber(arg[5])
if redis == "-" then redis = nil end -- (none: each process on its own budget)
local names = {}
for i = 1, count do names[i] = prefix .. "-" .. i end

-- NAME=VALUE options after the positional arguments
local opt = {}
for i = (mode == "zego" and 7 or 6), #arg do
  local name, value = arg[i]:match("^([%w_]+)=(.*)$")
  if not name then error("bad option " .. arg[i] .. " (NAME=VALUE expected)") end
  opt[name] = value
end

local totals = { total = 0, succeeded = 0, failed = 0, unknown = 0, calls = 0, codes = {} }
local function add(report)
  for _, k in ipairs { "total", "succeeded", "failed", "unknown", "calls" } do
    totals[k] = totals[k] + (report[k] or 0)
  end
  for _, r in ipairs(report.results or {}) do
    if not r.ok then totals.codes[#totals.codes + 1] = tostring(r.error and r.error.code) end
  end
end

local t0 = core.monotonic()
-- The maxmemory-policy a client's Redis connection read (its store
-- backend's handle: streamctl.pipeline.stores), or nil.
local function policy_of(c)
  local h = c._stores and c._stores[1]
  return h and h.handle.maxmemory_policy
end

if mode == "aliyun" then
  local c = assert(streamctl.aliyun.new { endpoint = endpoint, access_key_id = opt.key or "LTAIemulatorKey",
    access_key_secret = opt.secret or "emulator-secret", account_id = opt.account_id, redis = redis,
    max_rate = tonumber(opt.max_rate) })
  add(assert(c:resume_live_streams { domain_name = "push.example.com", app_name = "live", stream_names = names }))
  totals.policy = policy_of(c)
  c:close()
elseif mode == "zego" then
  local c = assert(streamctl.zego.new { endpoint = endpoint, app_id = 1234567890,
    server_secret = "0123456789abcdef0123456789abcdef", redis = redis, max_rate = tonumber(opt.max_rate) })
  for _ = 1, tonumber(arg[6]) do add(assert(c:resume_rtc_streams { stream_ids = names })) end
  totals.policy = policy_of(c)
  c:close()
else
  error("unknown mode " .. tostring(mode))
end
totals.seconds, totals.ended = core.monotonic() - t0, core.now()
io.write(cjson.encode(totals), "\n")
