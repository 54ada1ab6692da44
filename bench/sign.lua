-- Signatures per second for Aliyun V1, Aliyun V3 and ZEGO, on the C core and
-- through a client's whole prepare step (encode, sign, build the request).
-- Run by `make bench` under Lua 5.4 and LuaJIT.
local core = require "streamctl.core"
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"

local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or "1")
local interpreter = (type(jit) == "table" and jit.version) or _VERSION

local function measure(name, fn)
  -- Warm up, then run for SECONDS and count.
  for _ = 1, 1000 do fn() end
  local n, t0 = 0, core.monotonic()
  local deadline = t0 + SECONDS
  repeat
    for _ = 1, 500 do fn() end
    n = n + 500
  until core.monotonic() >= deadline
  local rate = n / (core.monotonic() - t0)
  print(string.format("%-20s %-36s %12.0f /s  %8.2f us each", interpreter, name, rate, 1e6 / rate))
end

local params = { Action = "ResumeLiveStream", AppName = "live", DomainName = "push.example.com",
  StreamName = "match-7", LiveStreamType = "publisher", AccessKeyId = "LTAIemulatorKey", Format = "JSON",
  SignatureMethod = "HMAC-SHA1", SignatureNonce = "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
  SignatureVersion = "1.0", Timestamp = "2026-11-22T08:00:00Z", Version = "2016-11-01" }
local secret = core.secret("emulator-secret")
local v3 = { method = "POST", path = "/", query = { AppName = "live", DomainName = "push.example.com",
    StreamName = "match-7", LiveStreamType = "publisher" },
  headers = { host = "live.aliyuncs.com", ["x-acs-action"] = "ResumeLiveStream", ["x-acs-version"] = "2016-11-01",
    ["x-acs-date"] = "2026-11-22T08:00:00Z", ["x-acs-signature-nonce"] = "3156853299f313e23d1673dc12e1703d",
    ["x-acs-content-sha256"] = core.sha256_hex("") },
  access_key_id = "LTAIemulatorKey", access_key_secret = secret }
local zsecret = core.secret("0123456789abcdef0123456789abcdef")

measure("core.aliyun_sign_v1", function() return core.aliyun_sign_v1("POST", params, secret) end)
measure("core.aliyun_sign_v3", function() return core.aliyun_sign_v3(v3) end)
measure("core.zego_sign", function() return core.zego_sign(1234567890, "4fd24687296dd9f3", zsecret, 1615186943) end)

local none = function() error("not sent") end
local a1 = assert(aliyun.new { access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret",
  signature_version = "v1", transport = none })
local a3 = assert(aliyun.new { access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret",
  transport = none })
local z = assert(zego.new { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef", transport = none })
local rp = { DomainName = "push.example.com", AppName = "live", StreamName = "match-7", LiveStreamType = "publisher" }
measure("aliyun:prepare (v1, whole request)", function() return a1:prepare("ResumeLiveStream", rp) end)
measure("aliyun:prepare (v3, whole request)", function() return a3:prepare("ResumeLiveStream", rp) end)
local ids = {}
for i = 1, 20 do ids[i] = "stream-" .. i end
measure("zego:prepare (20 IDs)", function() return z:prepare("ResumeRTCStreams", { StreamId = ids }) end)
