-- The loop bench/profile/run.sh counts: N ResumeLiveStream calls (V1, one
-- kept-alive connection, nothing paced or retried) after a warm-up, in one
-- of four modes:
--   call     client:resume_live_stream against the emulator
--   prepare  client:prepare alone (check, encode, nonce, time, sign, URL)
--   multi    prepare, then the request sent through the libcurl transport
--            the client uses (start, then poll): the exchange is multi -
--            prepare
--   fake     the call over a transport that answers at once (no network)
--   traced   the same in a trace (a `traceparent` on each request), no spans
--   spans    the same, its two spans made and handed to a hook that drops them
--   export   the same, the exporter its tracer: its spans encoded into the
--            exporter's queue as they end, flushed every 256 calls to a
--            collector that is down (its request made, its connection refused)
--   sampled  the same, its sampler always_off: a new trace's ids and a
--            `traceparent` (flags 00) on each request, no span recorded
--   lua54 bench/profile/call.lua MODE N
local emu = require "spec.helpers.emulator"
local streamctl = require "streamctl"
local tcurl = require "streamctl.transport.curl"

local mode, n = arg[1], tonumber(arg[2])
local OFFLINE = { fake = true, traced = true, spans = true, export = true, sampled = true }
assert(OFFLINE[mode] or ({ call = 1, prepare = 1, multi = 1 })[mode],
  "mode: call, prepare, multi, fake, traced, spans, export or sampled")
local FIELDS = { domain_name = "push.example.com", app_name = "live", stream_name = "bench" }
local RAW = { DomainName = "push.example.com", AppName = "live", StreamName = "bench", LiveStreamType = "publisher" }
local BODY = '{"RequestId":"2DEA97D1-2768-646E-4EC7-5A1F05DCF0ED"}'
local HEADERS = { ["content-type"] = "application/json;charset=utf-8", ["content-length"] = tostring(#BODY),
  ["x-acs-request-id"] = "2DEA97D1-2768-646E-4EC7-5A1F05DCF0ED", date = "Sat, 28 Nov 2026 00:00:00 GMT" }

local server = emu.start { config = { aliyun = { accounts = {
  LTAIbench = { secret = "bench-secret", qps = { ResumeLiveStream = 0 } } } } } }
local ok, err = pcall(function()
  local o = { endpoint = server.aliyun_url, access_key_id = "LTAIbench", access_key_secret = "bench-secret",
    signature_version = "v1", rate_limits = false, retry = false,
    transport = OFFLINE[mode] and function() return { status = 200, headers = HEADERS, body = BODY } end or nil }
  local exporter
  if mode == "traced" then o.trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" end
  if mode == "spans" then o.on_span = function() end end
  if mode == "export" or mode == "sampled" then
    exporter = require("streamctl.trace.exporter").new { endpoint = "http://127.0.0.1:1/v1/traces",
      sampler = require("streamctl.trace.sampler").new(mode == "sampled" and "always_off" or "parentbased_always_on") }
    o.tracer = exporter
  end
  local c = assert(streamctl.aliyun.new(o))
  local t = tcurl.new {}
  local function exchange(i)
    assert(t.start(i, assert(c:prepare("ResumeLiveStream", RAW))))
    local done
    repeat done = t.poll(10) until #done > 0
    assert(done[1].res and done[1].res.status == 200, "a request failed")
  end
  local calls = 0
  local function call()
    assert(c:resume_live_stream(FIELDS))
    calls = calls + 1
    if exporter and calls % 256 == 0 then exporter:flush() end
  end
  local one = ({ prepare = function() assert(c:prepare("ResumeLiveStream", RAW)) end, multi = exchange })[mode] or call
  for i = 1, 100 do one(i) end
  collectgarbage()
  for i = 1, n do one(i) end
  t.close()
  c:close()
end)
server:stop()
assert(ok, err)
