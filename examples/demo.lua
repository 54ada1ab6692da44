-- The streamctl demo: real stream control, end to end, against the bundled
-- emulator (`make demo` starts it, runs this, and stops it).
--
--   Alibaba Cloud: forbid three streams, check, resume them, check;
--                  create a pull-to-push relay, describe it, stop it.
--   ZEGOCLOUD:     forbid 45 RTC streams (3 calls of up to 20), check, resume them;
--                  forbid and resume a CDN stream.
--
-- Every outcome is read back from the emulator's own state, not taken on trust.
-- Environment: STREAMCTL_EMULATOR_DIR (where ca.pem is), STREAMCTL_ALIYUN_ENDPOINT,
-- STREAMCTL_ZEGO_ENDPOINT (default: the emulator's HTTPS ports, TLS verified).
local streamctl = require "streamctl"
local curl = require "streamctl.curl"
local cjson = require "cjson.safe"

local dir = os.getenv("STREAMCTL_EMULATOR_DIR")
  or ((os.getenv("XDG_RUNTIME_DIR") or "/tmp") .. "/streamctl-emulator-" .. (os.getenv("USER") or "user"))
local ca_file = dir .. "/ca.pem"
local ALIYUN = os.getenv("STREAMCTL_ALIYUN_ENDPOINT") or "https://127.0.0.1:18443"
local ZEGO = os.getenv("STREAMCTL_ZEGO_ENDPOINT") or "https://127.0.0.1:18444"

local failures = 0
local function say(fmt, ...) io.write(string.format(fmt, ...), "\n") end
local function check(ok, what)
  say("  %s %s", ok and "ok  " or "FAIL", what)
  if not ok then failures = failures + 1 end
end

-- The emulator's state, read over its control endpoint (the same TLS rules apply).
local control = curl.easy { ca_file = ca_file, timeout_ms = 5000 }
local function state(endpoint)
  local res, err = control:request { method = "GET", url = endpoint .. "/_emulator/state", headers = {}, body = "" }
  if not res then error("cannot read the emulator's state at " .. endpoint .. ": " .. err.message) end
  return assert(cjson.decode(res.body))
end

-- Progress on one line that updates in place on a terminal; elsewhere (a log,
-- CI) only failures and the final count are printed.
local tty = require("streamctl.signal").isatty(1)
local function progress(done, total, entry)
  if not entry.ok then io.write(string.format("\n  failed %s: %s\n", entry.stream, tostring(entry.error))) end
  if tty or done == total then
    io.write(string.format("%s  progress %d/%d", tty and "\r" or "", done, total))
    if done == total then io.write("\n") end
    io.flush()
  end
end

say("streamctl %s demo against the emulator (CA %s)", streamctl._VERSION, ca_file)

-------------------------------------------------------------------------------
say("\n== Alibaba Cloud ApsaraVideo Live at %s", ALIYUN)
local ali = assert(streamctl.aliyun.new {
  endpoint = ALIYUN, ca_file = ca_file,
  access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret",   -- the emulator's account
})

local DOMAIN, APP = "push.example.com", "live"
local names = { "match-1", "match-2", "match-3" }
local function stream_status(name)
  local s = state(ALIYUN).aliyun.streams[DOMAIN .. "/" .. APP .. "/" .. name]
  return s and s.status or "unknown"
end

say("forbid %d streams until an hour from now", #names)
local report = assert(ali:forbid_live_streams { domain_name = DOMAIN, app_name = APP, stream_names = names,
  resume_time = os.time() + 3600, on_progress = progress })
check(report.succeeded == #names, string.format("%d of %d forbidden", report.succeeded, #names))
for _, n in ipairs(names) do check(stream_status(n) == "forbidden", n .. " is forbidden in the emulator") end

say("resume them")
report = assert(ali:resume_live_streams { domain_name = DOMAIN, app_name = APP, stream_names = names,
  on_progress = progress })
check(report.succeeded == #names, string.format("%d of %d resumed", report.succeeded, #names))
for _, n in ipairs(names) do check(stream_status(n) == "normal", n .. " is live again in the emulator") end

say("relay a recording to a stream with a pull-to-push task")
local now = os.time()
local task, err = ali:create_live_pull_to_push {
  region = "cn-shanghai", task_name = "demo-relay", source_type = "url",
  source_urls = { "https://cdn.example.com/intro.mp4", "https://cdn.example.com/loop.mp4" },
  dst_url = "rtmp://" .. DOMAIN .. "/" .. APP .. "/relay-" .. now,
  start_time = now, end_time = now + 3600, repeat_number = -1, retry_interval = 60,
}
check(task ~= nil, task and ("created task " .. task.TaskId) or tostring(err))
if task then
  local d = assert(ali:describe_live_pull_to_push { region = "cn-shanghai", task_id = task.TaskId })
  check(d.TaskInfo and d.TaskInfo.TaskName == "demo-relay", "described: status " .. string.format("%d", d.TaskStatus)
    .. ", " .. #d.TaskInfo.SourceUrls .. " source URLs")
  assert(ali:stop_live_pull_to_push { region = "cn-shanghai", task_id = task.TaskId })
  local t = state(ALIYUN).aliyun.tasks[task.TaskId]
  check(t and t.TaskStatus == 3,
    "stopped: the emulator shows TaskStatus " .. string.format("%d", t and t.TaskStatus or -99))
  local _, again = ali:stop_live_pull_to_push { region = "cn-shanghai", task_id = task.TaskId }
  check(again and again.code == "CodeTaskHasStopped", "stopping it twice is refused: " .. tostring(again))
end

say("a typo is caught before anything is sent")
local _, typo = ali:resume_live_stream { domain_name = DOMAIN, app_name = APP, stream_nme = "match-1" }
check(typo and typo.code == "InvalidParameter", tostring(typo))
ali:close()

-------------------------------------------------------------------------------
say("\n== ZEGOCLOUD Server API at %s", ZEGO)
local z = assert(streamctl.zego.new {
  endpoint = ZEGO, ca_file = ca_file,
  app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef",   -- the emulator's account
})
local ids = {}
for i = 1, 45 do ids[i] = string.format("room-%02d", i) end
local function rtc_status(id)
  local app = state(ZEGO).zego.streams["1234567890"] or {}
  return app[id] and app[id].rtc or "unknown"
end
local function count(status)
  local app, n = state(ZEGO).zego.streams["1234567890"] or {}, 0
  for _, id in ipairs(ids) do if app[id] and app[id].rtc == status then n = n + 1 end end
  return n
end

say("forbid %d RTC streams", #ids)
report = assert(z:forbid_rtc_streams { stream_ids = ids, on_progress = progress })
check(report.calls == 3 and report.succeeded == #ids,
  string.format("%d of %d forbidden in %d calls, %.2f s", report.succeeded, #ids, report.calls, report.elapsed))
check(count("forbidden") == #ids, count("forbidden") .. " forbidden in the emulator")

say("resume them")
report = assert(z:resume_rtc_streams { stream_ids = ids, on_progress = progress })
check(report.succeeded == #ids, string.format("%d of %d resumed", report.succeeded, #ids))
check(count("normal") == #ids and rtc_status("room-01") == "normal", count("normal") .. " live in the emulator")

say("forbid and resume a CDN stream")
assert(z:forbid_cdn_live_stream { stream_id = "room-01" })
local app = state(ZEGO).zego.streams["1234567890"]
check(app["room-01"].cdn == "forbidden", "room-01 is forbidden on the CDN")
assert(z:resume_cdn_live_stream { stream_id = "room-01" })
app = state(ZEGO).zego.streams["1234567890"]
check(app["room-01"].cdn == "normal", "room-01 is back on the CDN")
z:close()

-------------------------------------------------------------------------------
say("\n== What the emulator counted")
for _, p in ipairs { { "aliyun", ALIYUN }, { "zego", ZEGO } } do
  local counters = state(p[2])[p[1]].counters
  local actions = {}
  for action in pairs(counters) do actions[#actions + 1] = action end
  table.sort(actions)
  for _, action in ipairs(actions) do
    local c = counters[action]
    say("  %-7s %-28s accepted %3d  throttled %d", p[1], action, c.accepted or 0, c.throttled or 0)
    if (c.throttled or 0) > 0 then failures = failures + 1 end
  end
end
control:close()

say("\n%s", failures == 0 and "demo finished: every result confirmed by the emulator"
  or (failures .. " check(s) failed"))
os.exit(failures == 0 and 0 or 1)
