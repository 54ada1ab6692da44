--- The simulator's providers: a model of ApsaraVideo Live and of ZEGOCLOUD
-- Server API v2 that takes the client's real signed requests (the tables
-- its transport is handed) and keeps the record the invariants are checked
-- against.
--
-- Modelled, by the strictest reading of the pages (../shared/notes/PROVIDERS.md
-- and docs/development/emulator-fidelity.md): per-stream state (Aliyun's block list, ZEGO's RTC and
-- CDN bans), pull-to-push tasks (a DstUrl used by one live task at a time,
-- stop and delete), ZEGO's Sequence rule (a Sequence not above the last one
-- applied for a stream within 10 s is not executed, and the answer is still
-- Code 0), nonces used once (Aliyun), the signing time checked against the
-- service's clock (15 min, ZEGO 10 min), and a strict sliding-window limiter
-- per account and action: a request is refused when the caps's worth of
-- requests arrived within the last second (a refused request takes
-- nothing). A crowd (spec/sim/crowd.lua) adds, on one action, a stranger
-- counted in that window as the emulator counts one (strangers.lua), a cap
-- below the page's, and a storm that refuses every request of the account
-- (the stranger's too) for a while. Signatures are not checked here
-- (spec/01 pins them by the providers' published examples, and the emulator
-- checks them with nginx's own primitives).
--
-- Every arrival is recorded: `{ t, provider, account, action, params, nonce,
-- ids, seq, verdict, applied, storm }`; every change of a stream's state, with the
-- arrival that made it.
-- @module sim.provider

local core = require "streamctl.core"
local json = require "cjson"

local pairs, ipairs, tonumber, tostring = pairs, ipairs, tonumber, tostring
local format, gsub, match, gmatch = string.format, string.gsub, string.match, string.gmatch
local floor, ceil, max = math.floor, math.ceil, math.max

local M = {}

--- Seconds of the Unix epoch at virtual time 0 (2026-11-23T00:00:00Z).
M.EPOCH = 1795392000

--- The caps (requests per second per account) the model enforces.
M.CAPS = {
  aliyun = { ResumeLiveStream = 30, ForbidLiveStream = 20, CreateLivePullToPush = 10, StopLivePullToPush = 10,
             DeleteLivePullToPush = 10, DescribeLivePullToPushList = 10, DescribeLiveStreamsBlockList = 50 },
  zego = { ResumeRTCStreams = 20, ForbidRTCStreams = 20, ResumeRTCStream = 20, ForbidRTCStream = 20,
           ResumeCDNLiveStream = 20, ForbidCDNLiveStream = 20 },
}
--- The test environment's caps (ZEGO RTC forbid/resume).
M.TEST_CAPS = { ResumeRTCStreams = 5, ForbidRTCStreams = 5, ResumeRTCStream = 5, ForbidRTCStream = 5 }

--- ZEGO's Sequence window, seconds.
M.SEQUENCE_WINDOW = 10

local function unescape(s)
  return (gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- A URL's query as name -> value, a repeated name as an array.
local function parse_query(url)
  local q = match(url, "%?(.*)$") or ""
  local out = {}
  for pair in gmatch(q, "[^&]+") do
    local k, v = match(pair, "^([^=]*)=?(.*)$")
    k, v = unescape(k), unescape(v)
    if k:sub(-2) == "[]" then
      local list = out[k] or {}
      list[#list + 1] = v
      out[k] = list
    else
      out[k] = v
    end
  end
  return out
end

local function http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", floor(t))
end

local Model = {}
Model.__index = Model

--- A model in `world` (for its clock).
function M.new(world)
  return setmetatable({
    world = world,
    arrivals = {},      -- every request that reached the service, in order
    changes = {},       -- every change of a stream's state: { t, stream, state, arrival }
    streams = {},       -- "aliyun:d/a/s" | "zego:<app>:rtc:<id>" | "zego:<app>:cdn:<id>" -> state
    seq = {},           -- "zego:<app>:<id>" -> { value, at }
    tasks = {}, task_order = {}, next_task = 0,
    nonces = {},
    windows = {},       -- account|action -> array of arrival times (the last second's)
    crowd = nil,        -- the schedule's crowd (spec/sim/crowd.lua): a stranger, a lowered cap, a storm
    next_request = 0,
    test_apps = {},     -- AppId -> true: the test environment's caps
  }, Model)
end

function Model:now()
  return M.EPOCH + self.world:now()
end

-- The arrivals of window `w` still in the second before `now` (now - span, now].
local function window_at(w, now)
  local keep = {}
  for _, t in ipairs(w) do if now - t < 1 then keep[#keep + 1] = t end end
  return keep
end

-- The cap of `action` at time `t` (a crowd's lowered cap from its time on).
function Model:cap_at(provider, action, is_test, t)
  local cap = (is_test and M.TEST_CAPS[action]) or M.CAPS[provider][action]
  local low = self.crowd and self.crowd.cap
  if cap and low and low.action == action and t >= low.from then cap = low.cap end
  return cap
end

-- A crowd's stranger on `action` (spec/sim/crowd.lua), replayed into window
-- `w` up to `now` as the emulator's strangers.lua does: group k is `burst`
-- arrivals at from + k * burst / rate (before `to`, when it leaves), each
-- offered to the window at its own time, counted when the window has room,
-- refused taking nothing when it is full (or a storm refuses everything),
-- and the rest of a group refused with its first refusal. Returns the
-- window.
local function replay_stranger(self, st, w, provider, action, now)
  local period = st.burst / st.rate
  local storm = self.crowd.storm
  while true do
    local t = st.from + st.next * period
    if t > now or (st.to and t >= st.to) then return w end
    w = window_at(w, t)
    local cap = self:cap_at(provider, action, nil, t)
    if storm and t >= storm.from and t < storm.to then cap = 0 end
    for i = 1, st.burst do
      if #w >= cap then
        st.refused = st.refused + st.burst - i + 1
        break
      end
      w[#w + 1] = t
      st.accepted = st.accepted + 1
    end
    st.next = st.next + 1
  end
end

-- Strict sliding window: refused when `cap` requests arrived within the
-- last second (a refused request takes nothing); with a crowd, the
-- stranger's arrivals are in the window, the cap may be lowered, and a
-- storm refuses everything ("storm"). A refusal's retry-after (ms) is the
-- emulator's: until the oldest arrival in the window leaves it (1 to 1000),
-- a storm's 1000 (the emulator's throttle fault's).
function Model:limited(provider, account, action, is_test)
  local now = self.world:now()
  local cap = self:cap_at(provider, action, is_test, now)
  if not cap then return false end
  local crowd = self.crowd
  if crowd and crowd.storm and now >= crowd.storm.from and now < crowd.storm.to then return "storm", 1000 end
  local key = provider .. "|" .. account .. "|" .. action
  local w = self.windows[key] or {}
  local st = crowd and crowd.stranger
  if st and st.action == action then w = replay_stranger(self, st, w, provider, action, now) end
  local keep = window_at(w, now)
  local over = #keep >= cap
  if not over then keep[#keep + 1] = now end
  self.windows[key] = keep
  if not over then return false end
  return true, max(1, ceil((keep[#keep - cap + 1] + 1 - now) * 1000))
end

--- Replays a crowd's stranger of `provider` up to now (at the end of a
-- run: its counts complete; the window it fills is dropped).
function Model:settle_stranger(provider)
  local st = self.crowd and self.crowd.stranger
  if not st then return end
  local w = {}
  for k, v in pairs(self.windows) do if k:sub(-#st.action - 1) == "|" .. st.action then w = v end end
  replay_stranger(self, st, w, provider, st.action, self.world:now())
end

local function request_id(self)
  self.next_request = self.next_request + 1
  return format("SIM-%08d", self.next_request)
end

local function answer(self, status, body, extra)
  local headers = { date = http_date(self:now()), ["content-type"] = "application/json" }
  for k, v in pairs(extra or {}) do headers[k] = v end
  return { status = status, headers = headers, body = body }
end

local function aliyun_error(self, code, status, extra)
  return answer(self, status or 400, json.encode { RequestId = request_id(self), Code = code, Message = code }, extra)
end

local function zego_answer(self, code, data)
  return answer(self, 200, json.encode { Code = code, Message = code == 0 and "success" or "failed",
                                          RequestId = request_id(self), Data = data })
end

--- Parses a request: provider, action, account, params, nonce, signing time.
function M.parse(req)
  local q = parse_query(req.url)
  local h = req.headers or {}
  if req.provider == "zego" then
    local ids = q["StreamId[]"] or (q.StreamId and { q.StreamId }) or {}
    return { provider = "zego", action = q.Action, account = q.AppId, params = q, nonce = q.SignatureNonce,
             signed_at = tonumber(q.Timestamp), ids = ids, seq = q.Sequence, is_test = q.IsTest == "true" }
  end
  local action, nonce, stamp, key = q.Action, q.SignatureNonce, q.Timestamp, q.AccessKeyId
  if h["x-acs-action"] then
    action, nonce, stamp = h["x-acs-action"], h["x-acs-signature-nonce"], h["x-acs-date"]
    key = match(h.authorization or "", "Credential=([^,]+)")
  end
  -- temporary credentials (spec/sim's holders) name their expiry; one account behind them all
  local expires = key and tonumber(match(key, "^STS%.sim%.(%d+)%."))
  return { provider = "aliyun", action = action, account = expires and "STS.sim" or key, params = q, nonce = nonce,
           signed_at = stamp and core.parse_utc_timestamp(stamp), key_expires = expires }
end

-- ---- Aliyun

local function set_stream(self, key, state, arrival)
  self.streams[key] = state
  self.changes[#self.changes + 1] = { t = self.world:now(), stream = key, state = state, arrival = arrival }
end

local function block_list(self, domain)
  local urls = {}
  local keys = {}
  for k, state in pairs(self.streams) do
    local d = match(k, "^aliyun:([^/]*)/")
    if d == domain and state == "forbidden" then keys[#keys + 1] = k:sub(#"aliyun:" + 1) end
  end
  table.sort(keys)
  for i, k in ipairs(keys) do urls[i] = k end
  return urls
end

local TASK_INFO = { "TaskName", "SourceType", "SourceProtocol", "DstUrl", "StartTime", "EndTime", "RepeatNumber",
                    "FileIndex", "Offset", "RetryCount", "RetryInterval" }

local function task_view(task)
  local info = {}
  for _, k in ipairs(TASK_INFO) do info[k] = task.params[k] end
  info.CallbackURL = task.params.CallbackUrl
  info.SourceUrls = task.params.SourceUrls and json.decode(task.params.SourceUrls) or nil
  return { TaskId = task.id, TaskStatus = task.status, TaskInfo = info }
end

--- Adds a task made by someone else (a foreign task for the same DstUrl).
function Model:foreign_task(params, status)
  self.next_task = self.next_task + 1
  local id = format("foreign-%d", self.next_task)
  local task = { id = id, params = params, status = status or 1, foreign = true }
  self.tasks[id] = task
  self.task_order[#self.task_order + 1] = id
  return task
end

local function aliyun_apply(self, a)
  local p, action = a.params, a.action
  if action == "ForbidLiveStream" or action == "ResumeLiveStream" then
    local key = "aliyun:" .. tostring(p.DomainName) .. "/" .. tostring(p.AppName) .. "/" .. tostring(p.StreamName)
    set_stream(self, key, action == "ForbidLiveStream" and "forbidden" or "normal", a)
    a.applied, a.stream = true, key
    return answer(self, 200, json.encode { RequestId = request_id(self) })
  elseif action == "DescribeLiveStreamsBlockList" then
    local urls = block_list(self, p.DomainName)
    return answer(self, 200, json.encode { RequestId = request_id(self), DomainName = p.DomainName,
                                            StreamUrls = { StreamUrl = urls }, TotalNum = #urls,
                                            PageNum = 1, PageSize = tonumber(p.PageSize) or 3000 })
  elseif action == "CreateLivePullToPush" then
    for _, id in ipairs(self.task_order) do
      local t = self.tasks[id]
      if t and t.params.DstUrl == p.DstUrl and t.status ~= 3 and t.status ~= -1 then
        return aliyun_error(self, "CodeConfigAlreadyExists")
      end
    end
    self.next_task = self.next_task + 1
    local id = format("task-%d", self.next_task)
    self.tasks[id] = { id = id, params = p, status = 1, arrival = a }
    self.task_order[#self.task_order + 1] = id
    a.applied, a.task = true, id
    return answer(self, 200, json.encode { RequestId = request_id(self), TaskId = id, RetCode = 0 })
  elseif action == "StopLivePullToPush" then
    local t = self.tasks[p.TaskId]
    if not t then return aliyun_error(self, "CodeTaskNotExist") end
    if t.status == 3 then return aliyun_error(self, "CodeTaskHasStopped") end
    t.status, t.stopped_by = 3, a
    a.applied, a.task = true, t.id
    return answer(self, 200, json.encode { RequestId = request_id(self), RetCode = 0 })
  elseif action == "DescribeLivePullToPushList" then
    local list = {}
    for _, id in ipairs(self.task_order) do
      local t = self.tasks[id]
      if t and (p.DstUrl == nil or t.params.DstUrl == p.DstUrl) then list[#list + 1] = task_view(t) end
    end
    return answer(self, 200, json.encode { RequestId = request_id(self), TaskList = list, Total = #list,
                                            RetCode = 0 })
  end
  return aliyun_error(self, "InvalidAction.NotFound", 404)
end

-- ---- ZEGO

local function compare_decimal(a, b)
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end

local ZEGO_STATE = {
  ForbidRTCStreams = { "rtc", "forbidden" }, ResumeRTCStreams = { "rtc", "normal" },
  ForbidRTCStream = { "rtc", "forbidden" }, ResumeRTCStream = { "rtc", "normal" },
  ForbidCDNLiveStream = { "cdn", "forbidden" }, ResumeCDNLiveStream = { "cdn", "normal" },
}

local function zego_apply(self, a)
  local what = ZEGO_STATE[a.action]
  if not what then return zego_answer(self, 30006) end
  local kind, state = what[1], what[2]
  local now = self.world:now()
  a.applied_ids, a.stale_ids = {}, {}
  for _, id in ipairs(a.ids) do
    local skey = "zego:" .. a.account .. ":" .. id
    local last = self.seq[skey]
    local stale = false
    if kind == "rtc" then
      if not a.seq or not match(a.seq, "^%d+$") then return zego_answer(self, 2) end
      if last and now - last.at < M.SEQUENCE_WINDOW and compare_decimal(a.seq, last.value) <= 0 then
        stale = true
      end
    end
    if stale then
      a.stale_ids[#a.stale_ids + 1] = id
    else
      if kind == "rtc" then self.seq[skey] = { value = a.seq, at = now } end
      set_stream(self, "zego:" .. a.account .. ":" .. kind .. ":" .. id, state, a)
      a.applied_ids[#a.applied_ids + 1] = id
    end
  end
  a.applied = #a.applied_ids > 0
  return zego_answer(self, 0)
end

--- A request arrives now. `fault` (optional) is what the schedule does to
-- it at the service: `{ kind = "5xx" | "throttle" | "malformed" | "code",
-- after_apply = bool, retry_after_ms = n }`. Returns the response (nil when
-- a fault drops it: the transport decides what the client sees) and the
-- arrival record.
function Model:handle(req, fault)
  local a = M.parse(req)
  a.t = self.world:now()
  a.sent_at = req.sim_sent_at
  a.process = req.sim_process
  a.copy = req.sim_copy
  self.arrivals[#self.arrivals + 1] = a
  local zego = a.provider == "zego"
  if zego and a.is_test then self.test_apps[a.account] = true end
  if fault and not fault.after_apply then
    a.verdict = "fault:" .. fault.kind
    return self:fault_answer(a, fault), a
  end
  -- the signing time against the service's clock
  local skew = a.signed_at and (a.signed_at - self:now()) or 1e9
  if skew > (zego and 600 or 900) or skew < -(zego and 600 or 900) then
    a.verdict = "clock"
    if zego then return zego_answer(self, a.action:find("CDN") and 3 or 100000004), a end
    return aliyun_error(self, "InvalidTimeStamp.Expired"), a
  end
  if not zego then
    if self.nonces[a.nonce] then
      a.verdict = "nonce"
      return aliyun_error(self, "SignatureNonceUsed"), a
    end
    self.nonces[a.nonce] = true
  end
  local over, after = self:limited(a.provider, a.account, a.action, a.is_test)
  if over then
    a.verdict, a.storm = "throttled", over == "storm" or nil
    if zego then return zego_answer(self, 30002), a end
    return aliyun_error(self, "Throttling.User", 400, { ["x-acs-retry-after"] = tostring(after) }), a
  end
  local res = zego and zego_apply(self, a) or aliyun_apply(self, a)
  a.verdict = a.verdict or (a.applied and "applied" or "answered")
  if fault then
    a.fault = fault.kind
    return self:fault_answer(a, fault), a
  end
  return res, a
end

-- The answer a service-side fault gives.
function Model:fault_answer(a, f)
  local zego = a.provider == "zego"
  if f.kind == "5xx" then
    if zego then return answer(self, 503, json.encode { Code = 100000015, Message = "busy" }) end
    return aliyun_error(self, "ServiceUnavailable", 503)
  elseif f.kind == "throttle" then
    if zego then return zego_answer(self, 30002) end
    local extra = f.retry_after_ms and { ["x-acs-retry-after"] = tostring(f.retry_after_ms) } or nil
    return aliyun_error(self, "Throttling.User", 400, extra)
  elseif f.kind == "malformed" then
    return answer(self, 200, "{\"RequestId\": ")
  end
  error("sim: unknown service fault " .. tostring(f.kind))
end

--- The state of a stream key (nil: never changed, i.e. normal).
function Model:state(key)
  return self.streams[key] or "normal"
end

return M
