-- One independent client for spec/62: a process of its own acting on the
-- emulator's account through a shared Redis, printing its report as one
-- JSON line. What it says on standard error (the fallback's notices) the
-- spec reads from the file it was redirected to.
--
--   lua redis_worker.lua aliyun ENDPOINT REDIS_URL PREFIX COUNT
--       resumes COUNT Aliyun streams PREFIX-1..PREFIX-COUNT (REDIS_URL "-": no Redis)
--   lua redis_worker.lua zego ENDPOINT REDIS_URL PREFIX COUNT ROUNDS
--       resumes the ZEGO streams PREFIX-1..PREFIX-COUNT, ROUNDS times over
--   lua redis_worker.lua get URL
--       one GET (starts a batch in an nginx), its body printed
local streamctl = require "streamctl"
local cjson = require "cjson"

local mode = arg[1]

if mode == "get" then
  local curl = require "streamctl.curl"
  local easy = curl.easy { timeout_ms = 120000 }
  local res = assert(easy:request { method = "GET", url = arg[2], headers = {}, body = "" })
  easy:close()
  io.write(res.body, "\n")
  os.exit(res.status == 200 and 0 or 1)
end

local endpoint, redis, prefix, count = arg[2], arg[3], arg[4], tonumber(arg[5])
if redis == "-" then redis = nil end -- (none: each process on its own budget)
local names = {}
for i = 1, count do names[i] = prefix .. "-" .. i end

local totals = { total = 0, succeeded = 0, failed = 0, unknown = 0, calls = 0, codes = {} }
local function add(report)
  for _, k in ipairs { "total", "succeeded", "failed", "unknown", "calls" } do
    totals[k] = totals[k] + (report[k] or 0)
  end
  for _, r in ipairs(report.results or {}) do
    if not r.ok then totals.codes[#totals.codes + 1] = tostring(r.error and r.error.code) end
  end
end

if mode == "aliyun" then
  local c = assert(streamctl.aliyun.new { endpoint = endpoint, access_key_id = "LTAIemulatorKey",
    access_key_secret = "emulator-secret", redis = redis })
  add(assert(c:resume_live_streams { domain_name = "push.example.com", app_name = "live", stream_names = names }))
  c:close()
elseif mode == "zego" then
  local c = assert(streamctl.zego.new { endpoint = endpoint, app_id = 1234567890,
    server_secret = "0123456789abcdef0123456789abcdef", redis = redis })
  for _ = 1, tonumber(arg[6]) do add(assert(c:resume_rtc_streams { stream_ids = names })) end
  c:close()
else
  error("unknown mode " .. tostring(mode))
end
io.write(cjson.encode(totals), "\n")
