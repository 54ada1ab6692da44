-- Signing throughput (run by `make bench` under Lua 5.4 and LuaJIT):
--
--   the C core alone: Aliyun V1 and V3 over a 16-parameter CreateLivePullToPush
--   request, the ZEGO signature; whole `prepare` calls (check, encode, nonce,
--   time, sign, build the request) for the same V1/V3 request and a 20-ID
--   ResumeRTCStreams;
--
-- each as the median of BENCH_RUNS runs of BENCH_SECONDS. Beside them, in the
-- same run, the floor: bench/floor (built by make bench from bench/floor.c)
-- doing bare OpenSSL over the same bytes, which this script writes out first.
-- Ratios (how many times the floor) are taken from the same run.
local core = require "streamctl.core"
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local cjson = require "cjson"
local lib = require "bench.lib"

local RUNS = tonumber(os.getenv("BENCH_RUNS") or "5")
local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "0.4")
local FLOOR = os.getenv("BENCH_FLOOR") -- the floor program; none: no floor rows

local ID, SECRET = "LTAI5tQm3Xb9ZpW2kR7nVcYd", "emulator-secret-0123456789abcd"
local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"
-- A 16-parameter CreateLivePullToPush (V1 adds the common parameters).
-- (as CreateLivePullToPush's published method takes them: its required Region, SourceUrls a JSON array)
local BUSINESS = {
  Region = "cn-shanghai", StartTime = "2026-12-01T00:00:00Z", EndTime = "2026-12-01T01:00:00Z",
  SourceType = "url",
  SourceUrls = '["https://cdn.example.com/vod/intro-2026.mp4","https://cdn.example.com/vod/outro-2026.mp4"]',
  DstUrl = "rtmp://push.example.com/live/intro?auth_key=1767225600-0-0-8c1f3e5d7a9b2c4e6f8a0b1c3d5e7f9a",
  TaskName = "intro-relay", CallbackUrl = "https://hooks.example.com/streamctl/pull-to-push?token=abc",
}
local V1 = { Action = "CreateLivePullToPush", Version = "2016-11-01", Format = "JSON", AccessKeyId = ID,
  SignatureMethod = "HMAC-SHA1", SignatureVersion = "1.0", SignatureNonce = "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
  Timestamp = "2026-11-22T08:00:00Z" }
for k, v in pairs(BUSINESS) do V1[k] = v end
local HEADERS = { host = "live.aliyuncs.com", ["x-acs-action"] = "CreateLivePullToPush",
  ["x-acs-version"] = "2016-11-01", ["x-acs-date"] = "2026-11-22T08:00:00Z",
  ["x-acs-signature-nonce"] = "3156853299f313e23d1673dc12e1703d", ["x-acs-content-sha256"] = core.sha256_hex("") }
local secret, zsecret = core.secret(SECRET), core.secret(ZEGO_SECRET)
local v3 = { method = "POST", path = "/", query = BUSINESS, headers = HEADERS, body = "", access_key_id = ID,
  access_key_secret = secret }

-- The bytes each signature covers, for the floor.
local function write(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end
local sts_v1 = core.aliyun_string_to_sign_v1("POST", V1)
local names = {}
for k in pairs(HEADERS) do names[#names + 1] = k end
table.sort(names)
local lines = { "POST", "/", core.canonical_query(BUSINESS) }
for _, k in ipairs(names) do lines[#lines + 1] = k .. ":" .. HEADERS[k] end
lines[#lines + 1] = ""
lines[#lines + 1] = table.concat(names, ";")
lines[#lines + 1] = HEADERS["x-acs-content-sha256"]
local canonical_v3 = table.concat(lines, "\n")
local _, _, hashed = core.aliyun_sign_v3(v3)
assert(core.sha256_hex(canonical_v3) == hashed, "the V3 canonical request rebuilt here is not the one signed")
local zego_input = "1234567890" .. "4fd24687296dd9f3" .. ZEGO_SECRET .. "1615186943"

local group = "signing"
local function row(name, fn, extra)
  local fig = { group = group, name = name, unit = "/s", samples = lib.rates(fn, RUNS, SECONDS) }
  for k, v in pairs(extra or {}) do fig[k] = v end
  return lib.record(fig)
end

print(string.format("  (%d runs of %.1f s each; the median, and the spread between the fastest and slowest run)",
  RUNS, SECONDS))
local figs = {}
figs.v1 = row("core.aliyun_sign_v1, CreateLivePullToPush, 16 parameters",
  function() return core.aliyun_sign_v1("POST", V1, secret) end, { bytes = #sts_v1 })
figs.v3 = row("core.aliyun_sign_v3, CreateLivePullToPush",
  function() return core.aliyun_sign_v3(v3) end, { bytes = #canonical_v3 })
figs.zego = row("core.zego_sign",
  function() return core.zego_sign(1234567890, "4fd24687296dd9f3", zsecret, 1615186943) end)

local none = function() error("not sent") end
local a1 = assert(aliyun.new { access_key_id = ID, access_key_secret = SECRET, signature_version = "v1",
  transport = none })
local a3 = assert(aliyun.new { access_key_id = ID, access_key_secret = SECRET, transport = none })
local z = assert(zego.new { app_id = 1234567890, server_secret = ZEGO_SECRET, transport = none })
local ids = {}
for i = 1, 20 do ids[i] = "stream-" .. i end
local rtc = { StreamId = ids }
group = "prepare"
figs.p1 = row("aliyun:prepare, V1, CreateLivePullToPush (whole request)",
  function() return a1:prepare("CreateLivePullToPush", BUSINESS) end)
figs.p3 = row("aliyun:prepare, V3, CreateLivePullToPush (whole request)",
  function() return a3:prepare("CreateLivePullToPush", BUSINESS) end)
figs.pz = row("zego:prepare, ResumeRTCStreams, 20 IDs (whole request)",
  function() return z:prepare("ResumeRTCStreams", rtc) end)

if FLOOR then
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. dir))
  write(dir .. "/v1", sts_v1)
  write(dir .. "/v3", canonical_v3)
  write(dir .. "/zego", zego_input)
  local p = assert(io.popen(string.format("%s %d %s %s/v1 %s/v3 %s/zego", FLOOR, RUNS, SECONDS, dir, dir, dir)))
  local floor = {}
  for line in p:lines() do
    local fig = cjson.decode(line)
    fig.group, fig.interpreter = "floor", "C (OpenSSL)"
    floor[#floor + 1] = lib.record(fig)
  end
  p:close()
  os.execute("rm -rf " .. dir)
  -- how many times the floor each signature costs, from this run
  local function ratio(name, fig, f)
    lib.record { group = "ratio", name = name, unit = "x", samples = { f.median / fig.median } }
  end
  if floor[1] then ratio("V1 signature / keyed HMAC-SHA1 of its bytes (times the floor)", figs.v1, floor[1]) end
  if floor[3] then ratio("V3 signature / SHA-256 + HMAC-SHA256 of its bytes", figs.v3, floor[3]) end
  if floor[4] then ratio("ZEGO signature / MD5 of its bytes", figs.zego, floor[4]) end
end
