-- The chaos run's checker (docs/development/chaos.md): pure functions over what a run
-- observed, so each can be fed a doctored log or report (spec/19).
--
--   local check = require "spec.chaos.check"
--   local entry = check.trim(raw)        -- one /_emulator/log entry, reduced to what the checks read
--   local result = check.all {
--     log = { entry, ... },              -- every provider request the emulator saw (trimmed)
--     state = <GET /_emulator/state>,    -- the final state
--     ops = { op, ... },                 -- what the clients reported (below)
--     faults = { [id] = spec, ... },     -- the faults injected, by the id the emulator gave them
--     processes = { { name, overran = bool, seconds }, ... },
--     app_id = "1234567890",
--   }
--   result.violations                    -- { { invariant = n, message = "..." }, ... } in invariant order
--   result.held[n]                       -- true when invariant n found nothing
--   result.figures                       -- counts for the report
--
-- An op (one line a client wrote, see spec/chaos/worker.lua) is one batch or
-- one call of one client, on streams no other client touches:
--   { client = "p1", op = 7, provider = "aliyun"|"zego", action = "ForbidLiveStream",
--     t_start, t_end (Unix seconds, the client's wall clock: the same machine's as the emulator's),
--     input = { item, ... } (as given, repeats kept), total, succeeded, failed, unknown, duplicates,
--     results = { { stream, ok, unknown, sent, code, recovered, task_id }, ... },
--     dst_url (a stop: the task's DstUrl), lost (the client never got the report: an nginx request failed) }
-- Items: Aliyun stream names (domain and app fixed: DOMAIN, APP), ZEGO StreamIds,
-- a create's DstUrl, a stop's TaskId.

local M = {}

M.DOMAIN, M.APP = "push.example.com", "live"

-- The published caps, requests per second per account (Aliyun) or AppId
-- (ZEGO) and action: src/streamctl/aliyun.lua's and zego.lua's `cap` (spec/19
-- checks these against the library's).
M.CAPS = {
  aliyun = {
    ForbidLiveStream = 20, ResumeLiveStream = 30, CreateLivePullToPush = 10, StopLivePullToPush = 10,
    UpdateLivePullToPush = 10, DescribeLiveUserDomains = 100, RestartLivePullToPush = 10, DeleteLivePullToPush = 10,
    DescribeLivePullToPush = 10, DescribeLivePullToPushList = 10, DescribeLiveStreamsBlockList = 50,
  },
  zego = {
    ForbidRTCStreams = 20, ResumeRTCStreams = 20, ForbidRTCStream = 20, ResumeRTCStream = 20,
    ForbidCDNLiveStream = 20, ResumeCDNLiveStream = 20, DescribeRTCStreamState = 40,
  },
}

--- The pacing margin (streamctl.pipeline.client's rate_margin default, 5%: at most
-- 50 ms of a second): a delay fault longer than this may let the emulator's
-- limiter see requests closer together than they arrived.
M.MARGIN_MS = 50

-- What each client action does to what (the dimension of the final state)
-- and to which value.
local EFFECT = {
  ForbidLiveStream = { dim = "aliyun", to = "forbidden" },
  ResumeLiveStream = { dim = "aliyun", to = "normal" },
  ForbidRTCStreams = { dim = "rtc", to = "forbidden" },
  ResumeRTCStreams = { dim = "rtc", to = "normal" },
  ForbidCDNLiveStream = { dim = "cdn", to = "forbidden" },
  ResumeCDNLiveStream = { dim = "cdn", to = "normal" },
  CreateLivePullToPush = { dim = "task", to = "running" },
  StopLivePullToPush = { dim = "task", to = "stopped" },
}
M.EFFECT = EFFECT

local INITIAL = { aliyun = "normal", rtc = "normal", cdn = "normal", task = "absent" }

local SEQUENCED = { ForbidRTCStreams = true, ResumeRTCStreams = true, ForbidRTCStream = true, ResumeRTCStream = true }

-- Slack (seconds) around an op's window when a log entry's arrival is
-- matched to it: both clocks are this machine's wall clock.
M.SLACK = 0.005

local function aliyun_key(name) return M.DOMAIN .. "/" .. M.APP .. "/" .. name end

-------------------------------------------------------------------------------
-- Log entries

--- One log entry reduced to what the checks read: arrival, action, verdict,
-- what was applied, and the items it names (`items`: Aliyun the stream key
-- "domain/app/stream", a create's DstUrl, a task operation's TaskId; ZEGO
-- its stream_ids).
function M.trim(e)
  local p = e.params or {}
  local t = {
    seq = e.seq, provider = e.provider, action = e.action, account = e.account_uid or e.account,
    real_time = e.real_time, verdict = e.verdict, applied = e.applied == true, code = e.code,
    status = e.status, fault = e.fault, fault_id = e.fault_id, sequence = e.sequence,
    duration_ms = e.duration_ms,
  }
  if e.provider == "zego" then
    t.items = e.stream_ids or {}
    t.applied_items = t.applied and (e.applied_streams or {}) or {}
  elseif e.action == "CreateLivePullToPush" then
    t.items = { p.DstUrl }
    t.task_id = e.detail and e.detail.task_id
  elseif p.TaskId then
    t.items = { p.TaskId }
  elseif p.StreamName then
    t.items = { (p.DomainName or "") .. "/" .. (p.AppName or "") .. "/" .. p.StreamName }
  else
    t.items = {}
  end
  if e.provider ~= "zego" then t.applied_items = t.applied and t.items or {} end
  return t
end

-------------------------------------------------------------------------------
-- Helpers

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  return keys
end

-- a < b for two decimal strings (ZEGO Sequences: compared as integers of any length)
local function dec_cmp(a, b)
  a, b = tostring(a):gsub("^0+(%d)", "%1"), tostring(b):gsub("^0+(%d)", "%1")
  if #a ~= #b then return #a < #b and -1 or 1 end
  if a == b then return 0 end
  return a < b and -1 or 1
end
M.dec_cmp = dec_cmp

-- The item key an op's result names, as log entries name it.
local function op_key(op, item)
  if op.provider == "aliyun" and (op.action == "ForbidLiveStream" or op.action == "ResumeLiveStream") then
    return aliyun_key(item)
  end
  return item
end

-- The final-state key of an op's item: dimension and identity (a task by its DstUrl).
local function dim_key(op, item)
  local effect = EFFECT[op.action]
  if not effect then return nil end
  if op.action == "StopLivePullToPush" then return "task|" .. tostring(op.dst_url) end
  return effect.dim .. "|" .. op_key(op, item)
end

local function fmt_time(t) return t and string.format("%.3f", t) or "?" end

local function describe_op(op)
  return string.format("%s op %s %s [%s .. %s]", tostring(op.client), tostring(op.op), tostring(op.action),
    fmt_time(op.t_start), fmt_time(op.t_end))
end

local function describe_entry(e)
  return string.format("log seq %s %s %s at %s verdict %s%s%s%s", tostring(e.seq), tostring(e.action),
    table.concat(e.items or {}, ","), fmt_time(e.real_time), tostring(e.verdict),
    e.fault and (" fault " .. e.fault) or "", e.sequence and (" Sequence " .. e.sequence) or "",
    e.applied and " applied" or "")
end
M.describe_entry, M.describe_op = describe_entry, describe_op

-- Index of the ops' items: provider|action|item -> { {op, result}, ... } by t_start.
local function index_ops(ops)
  local idx = {}
  for _, op in ipairs(ops) do
    for _, r in ipairs(op.results or {}) do
      local k = op.provider .. "|" .. op.action .. "|" .. op_key(op, r.stream)
      local list = idx[k]
      if not list then list = {}; idx[k] = list end
      list[#list + 1] = { op = op, result = r }
    end
    if op.lost then
      for _, item in ipairs(op.input or {}) do
        local k = op.provider .. "|" .. op.action .. "|" .. op_key(op, item)
        local list = idx[k]
        if not list then list = {}; idx[k] = list end
        list[#list + 1] = { op = op, result = { stream = item, unknown = true, lost = true } }
      end
    end
  end
  for _, list in pairs(idx) do
    table.sort(list, function(a, b) return a.op.t_start < b.op.t_start end)
  end
  return idx
end
M.index_ops = index_ops

-- The op (and its result) whose window holds entry `e`'s arrival, for `item`.
local function owner(idx, e, item)
  local list = idx[e.provider .. "|" .. e.action .. "|" .. item]
  if not list then return nil end
  for _, x in ipairs(list) do
    if e.real_time >= x.op.t_start - M.SLACK and e.real_time <= (x.op.t_end or math.huge) + M.SLACK then
      return x.op, x.result
    end
  end
  return nil
end

-- A violation of invariant `n`; `at`, when given, is the time it happened
-- (the run prints the chaos events around it).
local function add(out, n, message, at)
  out[#out + 1] = { invariant = n, message = message, at = at }
end

-------------------------------------------------------------------------------
--- How long after Redis is back a process that met the outage may still
-- pace on its own fallback budget beside those that never saw it (seconds:
-- the store's retry_ms, 1 s, and its timeout). A window over the cap within
-- an outage and this long after it is the documented limit (docs/redis.md,
-- "When Redis is down or slow": each keeps its own budget for one more second),
-- counted apart (`outage_windows`), not a violation. (A FLUSHALL, with no
-- outage, starts a fresh schedule after the loss pause: not excused.)
M.OUTAGE_S = 1.5

-- 1. No action over its cap in any sliding second; every throttled request
-- retried or reported failed.

--- Arrivals per account and action in every 1-s window (t - 1, t]: a window
-- over its cap is a violation unless a delay fault longer than the margin
-- was being served (for that action) within it, which makes it `excused`.
-- Counts every arrival the gateway did not refuse (verdict "rejected": bad
-- signature or clock), faulted ones too: the client paces every request it sends.
function M.caps(log, faults, caps, outages)
  caps = caps or M.CAPS
  local out, groups, busiest, excused, outage_windows = {}, {}, {}, 0, 0
  -- the delay faults longer than the margin, as [arrival, arrival + delay] per provider|action
  local delayed = {}
  -- A request a fault answered before it was read has no account in the log
  -- when it was signed V3 (the key is in its Authorization header): it is
  -- counted with the provider's only account, when the log shows one.
  local accounts = {}
  for _, e in ipairs(log) do
    if e.account ~= nil then
      accounts[e.provider] = accounts[e.provider] or {}
      accounts[e.provider][e.account] = true
    end
  end
  local function account_of(e)
    if e.account ~= nil then return tostring(e.account) end
    local only = sorted_keys(accounts[e.provider] or {})
    return #only == 1 and tostring(only[1]) or "?"
  end
  for _, e in ipairs(log) do
    local f = e.fault_id and faults and faults[e.fault_id]
    if e.fault == "delay" and (not f or (f.delay_ms or 1000) > M.MARGIN_MS) then
      local k = e.provider .. "|" .. e.action
      delayed[k] = delayed[k] or {}
      local d = f and f.delay_ms or (e.duration_ms or 1000)
      table.insert(delayed[k], { e.real_time, e.real_time + d / 1000 })
    end
    if e.verdict ~= "rejected" and caps[e.provider] and caps[e.provider][e.action] then
      local k = e.provider .. "|" .. account_of(e) .. "|" .. e.action
      groups[k] = groups[k] or {}
      table.insert(groups[k], e)
    end
  end
  -- Every arrival counts, a dropped request's next one too: a transport
  -- never sends a request again by itself (issue 66: libcurl and the
  -- cosocket transport did, on a reused connection dropped after the
  -- request left, a copy without a slot, which this check once left out of
  -- the count as theirs; chaos-short seed 799244 met one all the same).
  for _, k in ipairs(sorted_keys(groups)) do
    local list = groups[k]
    table.sort(list, function(a, b) return a.real_time < b.real_time end)
    local provider, action = k:match("^([^|]*)|.*|([^|]*)$")
    local cap = caps[provider][action]
    local j, most, reported = 1, 0, false
    for i = 1, #list do
      while list[i].real_time - list[j].real_time >= 1 do j = j + 1 end
      local n = i - j + 1
      if n > most then most = n end
      if n > cap then
        local from, to = list[j].real_time, list[i].real_time
        local excuse = false
        for _, d in ipairs(delayed[provider .. "|" .. action] or {}) do
          if d[1] <= to and d[2] >= from - 1 then excuse = true break end
        end
        local outage = false
        for _, o in ipairs(outages or {}) do
          if o[1] <= to and o[2] + M.OUTAGE_S >= from then outage = true break end
        end
        if excuse then
          excused = excused + 1
        elseif outage then
          outage_windows = outage_windows + 1
        elseif not reported then
          reported = true
          local lines = {}
          for x = j, i do lines[#lines + 1] = "  " .. describe_entry(list[x]) end
          add(out, 1, string.format("%s: %d requests of %s arrived within %.3f s (cap %d per second), from %s:\n%s",
            k, n, action, to - from, cap, fmt_time(from), table.concat(lines, "\n")), from)
        end
      end
    end
    busiest[k] = most
  end
  return out, { busiest = busiest, excused_windows = excused, outage_windows = outage_windows }
end

local THROTTLE_CODES = { ["Throttling.User"] = true, ["30002"] = true }

--- Every throttled request (by the limiter or a throttle fault) belongs to
-- an op that sent the call again later or reported the item as not done.
function M.throttled(log, ops)
  local out = {}
  local idx = index_ops(ops)
  local later = {} -- provider|action|item -> arrival times, sorted
  for _, e in ipairs(log) do
    for _, item in ipairs(e.items or {}) do
      local k = e.provider .. "|" .. e.action .. "|" .. item
      later[k] = later[k] or {}
      table.insert(later[k], e.real_time)
    end
  end
  for _, list in pairs(later) do table.sort(list) end
  local n = 0
  for _, e in ipairs(log) do
    if e.verdict == "throttled" or (e.verdict == "fault" and THROTTLE_CODES[tostring(e.code)]) then
      n = n + 1
      local seen = {}
      for _, item in ipairs(e.items or {}) do
        if not seen[item] then
          seen[item] = true
          local op, r = owner(idx, e, item)
          if op and r.ok then
            local again = false
            for _, t in ipairs(later[e.provider .. "|" .. e.action .. "|" .. item]) do
              if t > e.real_time and t <= op.t_end + M.SLACK then again = true break end
            end
            if not again then
              add(out, 1, string.format("%s was throttled and never sent again, yet %s reported %s done",
                describe_entry(e), describe_op(op), item), e.real_time)
            end
          end
        end
      end
    end
  end
  return out, { throttled = n }
end

-------------------------------------------------------------------------------
-- 2. Each item's final state is what the ops reported; an op reported done was applied.

local function state_value(state, dim, key, app_id)
  if dim == "aliyun" then
    local s = state.aliyun and state.aliyun.streams and state.aliyun.streams[key]
    return s and s.status or "normal"
  elseif dim == "rtc" or dim == "cdn" then
    local app = state.zego and state.zego.streams and state.zego.streams[app_id] or {}
    local s = app[key]
    return s and s[dim] or "normal"
  else -- task, by DstUrl
    for _, t in pairs(state.aliyun and state.aliyun.tasks or {}) do
      if t.TaskInfo and t.TaskInfo.DstUrl == key then
        return tonumber(t.TaskStatus) == 3 and "stopped" or "running"
      end
    end
    return "absent"
  end
end
M.state_value = state_value

--- The values each item may end in, given the ops on it in order: a done
-- op sets it, an unknown one may have, a failed one did not.
function M.final_state(state, ops, app_id)
  local out = {}
  local by = {}
  for _, op in ipairs(ops) do
    for _, r in ipairs(op.results or {}) do
      local k = dim_key(op, r.stream)
      if k then
        by[k] = by[k] or {}
        table.insert(by[k], { op = op, result = r })
      end
    end
    if op.lost then
      for _, item in ipairs(op.input or {}) do
        local k = dim_key(op, item)
        if k then
          by[k] = by[k] or {}
          table.insert(by[k], { op = op, result = { stream = item, unknown = true } })
        end
      end
    end
  end
  local checked = 0
  for _, k in ipairs(sorted_keys(by)) do
    local list = by[k]
    table.sort(list, function(a, b) return a.op.t_start < b.op.t_start end)
    local dim, key = k:match("^([^|]*)|(.*)$")
    local possible = { [INITIAL[dim]] = true }
    local history = {}
    for _, x in ipairs(list) do
      local to = EFFECT[x.op.action].to
      local r = x.result
      if r.ok then
        possible = { [to] = true }
      elseif r.unknown then
        possible[to] = true
      end
      history[#history + 1] = string.format("  %s: %s", describe_op(x.op),
        r.ok and "done" or (r.unknown and "unknown" or ("failed " .. tostring(r.code))))
    end
    local final = state_value(state, dim, key, app_id)
    checked = checked + 1
    if not possible[final] then
      local want = sorted_keys(possible)
      add(out, 2, string.format("%s %s ends %s; the reports allow only %s; its ops:\n%s", dim, key, final,
        table.concat(want, " or "), table.concat(history, "\n")))
    end
  end
  return out, { items = checked }
end

--- Each item an op reported done was applied by one of its requests (the log
-- shows it applied within the op's window), or recovered by a look-up that
-- found it in effect.
function M.applied(log, ops)
  local out = {}
  local applied = {} -- provider|action|item -> arrival times of applied requests
  for _, e in ipairs(log) do
    for _, item in ipairs(e.applied_items or {}) do
      local k = e.provider .. "|" .. e.action .. "|" .. item
      applied[k] = applied[k] or {}
      table.insert(applied[k], e.real_time)
    end
  end
  local n = 0
  for _, op in ipairs(ops) do
    if EFFECT[op.action] then
      for _, r in ipairs(op.results or {}) do
        if r.ok and not r.recovered then
          n = n + 1
          local found = false
          for _, t in ipairs(applied[op.provider .. "|" .. op.action .. "|" .. op_key(op, r.stream)] or {}) do
            if t >= op.t_start - M.SLACK and t <= op.t_end + M.SLACK then found = true break end
          end
          if not found then
            add(out, 2, string.format("%s reported %s done, but no request of it was applied in its window",
              describe_op(op), tostring(r.stream)))
          end
        end
      end
    end
  end
  return out, { done = n }
end

-------------------------------------------------------------------------------
-- 3. No pull-to-push task created twice.

function M.creates(log, state, ops)
  local out = {}
  local applied = {}
  for _, e in ipairs(log) do
    if e.action == "CreateLivePullToPush" and e.applied then
      local dst = e.items[1]
      applied[dst] = applied[dst] or {}
      table.insert(applied[dst], e)
    end
  end
  for _, dst in ipairs(sorted_keys(applied)) do
    local list = applied[dst]
    if #list > 1 then
      local lines = {}
      for _, e in ipairs(list) do lines[#lines + 1] = "  " .. describe_entry(e) end
      add(out, 3, string.format("DstUrl %s created %d times:\n%s", dst, #list, table.concat(lines, "\n")))
    end
  end
  local tasks = {}
  for id, t in pairs(state.aliyun and state.aliyun.tasks or {}) do
    local dst = t.TaskInfo and t.TaskInfo.DstUrl
    if dst then
      tasks[dst] = tasks[dst] or {}
      table.insert(tasks[dst], id)
    end
  end
  for _, dst in ipairs(sorted_keys(tasks)) do
    if #tasks[dst] > 1 then
      table.sort(tasks[dst])
      add(out, 3, string.format("DstUrl %s has %d tasks in the final state: %s", dst, #tasks[dst],
        table.concat(tasks[dst], ", ")))
    end
  end
  local creates = 0
  for _, op in ipairs(ops) do
    if op.action == "CreateLivePullToPush" then
      for _, r in ipairs(op.results or {}) do
        creates = creates + 1
        local made = applied[r.stream] or {}
        if r.ok and r.task_id and tasks[r.stream] and tasks[r.stream][1] ~= r.task_id then
          add(out, 3, string.format("%s reported task %s for %s, but the task there is %s", describe_op(op),
            r.task_id, r.stream, tasks[r.stream][1]))
        elseif not r.ok and not r.unknown and #made > 0 then
          add(out, 3, string.format("%s reported the create of %s failed (%s), yet it was applied: %s",
            describe_op(op), r.stream, tostring(r.code), describe_entry(made[1])))
        end
      end
    end
  end
  return out, { creates = creates }
end

-------------------------------------------------------------------------------
-- 4. Every call and stream reported exactly once; nothing reported `sent = false` was applied.

function M.reports(log, ops)
  local out = {}
  local idx = index_ops(ops)
  local items = 0
  for _, op in ipairs(ops) do
    local who = describe_op(op)
    if op.lost then
      add(out, 4, who .. ": the client never got its report (" .. tostring(op.lost) .. ")")
    elseif not op.t_end then
      add(out, 4, who .. ": started, never ended (the process was cut off)")
    else
      local results = op.results or {}
      if op.total ~= op.succeeded + op.failed + op.unknown then
        add(out, 4, string.format("%s: total %d ~= succeeded %d + failed %d + unknown %d", who, op.total,
          op.succeeded, op.failed, op.unknown))
      end
      if #results ~= op.total then
        add(out, 4, string.format("%s: %d results for a total of %d", who, #results, op.total))
      end
      local want, unique = {}, 0
      for _, item in ipairs(op.input or {}) do
        if not want[item] then want[item] = 0; unique = unique + 1 end
      end
      if op.total ~= unique then
        add(out, 4, string.format("%s: total %d for %d distinct items", who, op.total, unique))
      end
      if op.duplicates and op.duplicates ~= #(op.input or {}) - unique then
        add(out, 4, string.format("%s: duplicates %d for %d items, %d distinct", who, op.duplicates,
          #(op.input or {}), unique))
      end
      local counts = { ok = 0, unknown = 0, failed = 0 }
      for _, r in ipairs(results) do
        items = items + 1
        if want[r.stream] == nil then
          add(out, 4, string.format("%s: reported %s, which it was not given", who, tostring(r.stream)))
        else
          want[r.stream] = want[r.stream] + 1
        end
        local c = r.ok and "ok" or (r.unknown and "unknown" or "failed")
        counts[c] = counts[c] + 1
      end
      for _, item in ipairs(sorted_keys(want)) do
        if want[item] ~= 1 then
          add(out, 4, string.format("%s: %s reported %d times", who, item, want[item]))
        end
      end
      if counts.ok ~= op.succeeded or counts.unknown ~= op.unknown or counts.failed ~= op.failed then
        add(out, 4, string.format("%s: its results say %d done, %d unknown, %d failed; its counts %d, %d, %d", who,
          counts.ok, counts.unknown, counts.failed, op.succeeded, op.unknown, op.failed))
      end
    end
  end
  -- sent = false: no request of that op applied that item (docs/pacing.md "What a
  -- report says": a failure is `sent = false` only when no attempt can have
  -- taken effect; one the service refused, a throttle, may have arrived)
  local unsent = 0
  for _, e in ipairs(log) do
    for _, item in ipairs(e.applied_items or {}) do
      local op, r = owner(idx, e, item)
      if op and r.sent == false and not r.ok then
        unsent = unsent + 1
        add(out, 4, string.format("%s reported %s not sent (%s), but %s", describe_op(op), item,
          tostring(r.code), describe_entry(e)))
      end
    end
  end
  return out, { items = items }
end

--- Every request of a client action arrived within an op that names its
-- item (a request no report accounts for is a stray: sent after its op
-- ended, or by no op at all).
function M.strays(log, ops)
  local out = {}
  local idx = index_ops(ops)
  for _, e in ipairs(log) do
    if EFFECT[e.action] then
      for _, item in ipairs(e.items or {}) do
        if not owner(idx, e, item) then
          add(out, 4, "a request no op accounts for: " .. describe_entry(e))
          break
        end
      end
    end
  end
  return out
end

-------------------------------------------------------------------------------
-- 5. ZEGO Sequences strictly increasing per stream in arrival order.

--- Per stream, in arrival order, each RTC request's Sequence is above the
-- one before, or equal to it only when it is that same call sent again
-- (same action, same StreamIds).
function M.sequences(log)
  local out = {}
  local list = {}
  for _, e in ipairs(log) do
    if e.provider == "zego" and SEQUENCED[e.action] then list[#list + 1] = e end
  end
  table.sort(list, function(a, b)
    if a.real_time ~= b.real_time then return a.real_time < b.real_time end
    return a.seq < b.seq
  end)
  local last = {}
  local checked = 0
  for _, e in ipairs(list) do
    checked = checked + 1
    if e.sequence == nil or e.sequence == "" then
      add(out, 5, "an RTC request without a Sequence: " .. describe_entry(e))
    else
      local seen = {}
      for _, id in ipairs(e.items or {}) do
        if not seen[id] then
          seen[id] = true
          local before = last[id]
          if before then
            local c = dec_cmp(e.sequence, before.sequence)
            if c < 0 then
              add(out, 5, string.format("stream %s: Sequence %s arrived after %s\n  %s\n  %s", id, e.sequence,
                before.sequence, describe_entry(before), describe_entry(e)), e.real_time)
            elseif c == 0 and (before.action ~= e.action
                or table.concat(before.items, "\0") ~= table.concat(e.items, "\0")) then
              add(out, 5, string.format("stream %s: Sequence %s carried by two calls\n  %s\n  %s", id, e.sequence,
                describe_entry(before), describe_entry(e)))
            end
          end
          last[id] = e
        end
      end
    end
  end
  return out, { rtc_requests = checked }
end

-------------------------------------------------------------------------------
-- 6. Every process ended within its deadline.

function M.processes(processes)
  local out = {}
  for _, p in ipairs(processes or {}) do
    if p.overran then
      add(out, 6, string.format("process %s did not end within its deadline (killed after %.1f s)", p.name,
        p.seconds or -1))
    elseif p.status and p.status ~= 0 then
      add(out, 6, string.format("process %s exited with status %s: %s", p.name, tostring(p.status),
        tostring(p.stderr or "")))
    end
  end
  return out
end

-------------------------------------------------------------------------------

M.INVARIANTS = {
  "no action over its cap in any second; every throttled request retried or reported failed",
  "each stream's final state is what the clients reported; what they reported done was applied",
  "no pull-to-push task created twice",
  "every call and stream reported exactly once; nothing reported unsent was applied",
  "ZEGO Sequences strictly increasing per stream in arrival order",
  "every process ended within its deadline",
}

--- Runs every check; returns { violations, held, figures }.
function M.all(run)
  local log, ops = run.log or {}, run.ops or {}
  local violations, figures = {}, {}
  local function take(list, f)
    for _, v in ipairs(list) do violations[#violations + 1] = v end
    for k, v in pairs(f or {}) do figures[k] = v end
  end
  take(M.caps(log, run.faults, run.caps, run.outages))
  take(M.throttled(log, ops))
  take(M.final_state(run.state or {}, ops, run.app_id or "1234567890"))
  take(M.applied(log, ops))
  take(M.creates(log, run.state or {}, ops))
  take(M.reports(log, ops))
  take(M.strays(log, ops))
  take(M.sequences(log))
  take(M.processes(run.processes))
  -- stable: by invariant, then as found
  for i, v in ipairs(violations) do v.order = i end
  table.sort(violations, function(a, b)
    if a.invariant ~= b.invariant then return a.invariant < b.invariant end
    return a.order < b.order
  end)
  local held = {}
  for n = 1, #M.INVARIANTS do held[n] = true end
  for _, v in ipairs(violations) do held[v.invariant] = false end
  return { violations = violations, held = held, figures = figures }
end

return M
