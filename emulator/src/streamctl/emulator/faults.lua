-- Injected faults: POST /_emulator/faults queues them, provider requests take them.
--
-- A fault spec (JSON):
--   {
--     "kind": "http500" | "http503" | "throttle" | "delay" | "drop"
--           | "malformed" | "truncated" | "skew" | "code" | "page",
--     "action": "ResumeLiveStream" | "*",  -- default "*"
--     "count": 3,                          -- next N matching requests, default 1
--     "delay_ms": 200,                     -- delay: how long (default 1000, max 60000)
--     "skew_s": 3600,                      -- skew: Date header shift (default 3600)
--     "retry_after_ms": 1000,              -- throttle: x-acs-retry-after (default 1000)
--     "code": 1, "message": "..."          -- code: the non-zero code answered (default 1) and
--                                          --   its text (default: the code's own, see below)
--     "after_apply": false,                -- see below
--     "duration_s": 30,                    -- see below
--     "task_id": "...", "source_url": "...", -- source_down: which tasks' source (see below)
--     "keep": 20, "total": 60,             -- page: the entries kept, the total answered (see below)
--     "provider": "aliyun" | "zego" | "imds" -- default: the provider of the port posted to
--   }
--
-- Kinds:
--   http500 / http503  the provider's 500 / 503 answer (InternalError / ServiceUnavailable;
--                      ZEGO: HTTP 500 Code 30003 / HTTP 503 Code 100000015)
--   throttle           the provider's throttling answer (Throttling.User + x-acs-retry-after;
--                      ZEGO: Code 30002), without touching the real token bucket
--   drop               the connection is closed without any response (nginx 444)
--   malformed          a complete HTTP response whose JSON body is broken
--   truncated          a response announcing Content-Length N that closes after N/2 bytes
--   delay              the request waits delay_ms of real time from its arrival, then is served normally
--   skew               the request is served normally, its Date header shifted by skew_s
--   source_down        (aliyun only) not a request fault: the source of pull-to-push tasks is
--                      down (task_events.lua) from now for duration_s (none: until the faults
--                      are deleted), for the task task_id and/or the tasks pulling source_url
--                      (neither: every task); no request ever takes it, count is ignored
--   page               (aliyun only) a listing's answer served, then its page cut to its first
--                      `keep` entries (default: all) and its total (TotalNum, TotalCount,
--                      Total) answered as `total` (any number; "none": left out; default: the
--                      real one): a short page, an odd total (fault_answer.page)
--   code               an HTTP 200 answer with a non-zero code, the way an operation's page
--                      documents its own failures: Aliyun {"RequestId","RetCode":code,
--                      "Description":message} (the pull-to-push operations' RetCode; message
--                      default "Failed"), ZEGO {"Code":code,"Message":message,...} (message
--                      default: the code's text, e.g. 1 "Request failed.", 42004)
--
-- after_apply (http500, http503, throttle, drop, malformed, truncated, code):
--   false (default)  the fault replaces the request: nothing is verified or applied;
--   true             the request is verified and applied as usual (state changes,
--                    nonce used, token taken) and only then is its answer replaced:
--                    "sent, but no answer came back".
-- delay and skew always serve the request normally.
--
-- A request takes at most one fault: the oldest pending one that matches its
-- provider and action. Each fault's count goes down by one per request taken;
-- at zero it is removed.
--
-- duration_s (a number of seconds above 0): the fault answers every matching
-- request from now until the emulator clock reaches now + duration_s ("the
-- metadata service is down for a minute"); count is then ignored, and the
-- fault shows "until" (emulator time). Moving the clock past it ends it.
--
-- Provider "imds" (the ECS metadata service, when the emulator serves it):
-- its actions are token, role, credentials and other (imds.lua); its kinds
-- are http500, http503 (HTML 500/503), drop, malformed, truncated, delay and
-- skew. A metadata service that is down shows as drop (the connection closes
-- without an answer: the nearest a listening server comes to "connection
-- refused"), http500/http503, or delay (a timeout, for a client that gives up
-- first: the SDKs wait 1 s). The Aliyun ports' STS actions (AssumeRole,
-- AssumeRoleWithOIDC, GetCallerIdentity) and the credentials URI
-- ("credentials-uri") take faults as any Aliyun action.

local type, ipairs, pairs = type, ipairs, pairs
local floor = math.floor
local remove, concat = table.remove, table.concat

local M = {}

local KINDS = {
  http500 = true, http503 = true, throttle = true, delay = true,
  drop = true, malformed = true, truncated = true, skew = true, code = true, source_down = true, page = true,
}

M.KINDS = KINDS

local providers = { aliyun = true, zego = true }
local pending = { aliyun = {}, zego = {} }
local next_id = 1

-- The kinds each provider takes (nil: all).
local PROVIDER_KINDS = {
  imds = { http500 = true, http503 = true, drop = true, malformed = true, truncated = true, delay = true,
           skew = true },
}

-- Kinds that no request takes (they act elsewhere), and the providers they apply to.
local NOT_REQUEST = { source_down = { aliyun = true } }
-- Kinds that one provider's requests take only (its listings).
local ONLY = { page = { aliyun = true } }

-- The providers faults can be posted for: aliyun and zego, and those the
-- emulator serves besides (imds). Called at start.
function M.set_providers(extra)
  providers = { aliyun = true, zego = true }
  for _, p in ipairs(extra or {}) do
    providers[p] = true
  end
  M.reset()
end

local function provider_names()
  local names = { "aliyun", "zego" }
  if providers.imds then
    names[#names + 1] = "imds"
  end
  return names
end

-- A setting's value, `default` when it is absent.
local function or_default(value, default)
  if value == nil then
    return default
  end
  return value
end

-- The provider a fault is for: spec.provider when given (the message when
-- the emulator does not serve it), else the port's `provider`.
local function provider_of(provider, spec)
  if spec.provider == nil then
    return provider
  end
  if not providers[spec.provider] then
    return nil, "fault: provider must be \"" .. concat(provider_names(), "\", \"") .. "\""
      .. (spec.provider == "imds" and " (imds: the emulator serves no metadata service; start it with "
        .. "--imds-port)" or "")
  end
  return spec.provider
end

-- The kind, one `provider` takes, and the tasks a source_down names: the
-- message when they are wrong, else nil.
local function check_kind(provider, spec)
  if not KINDS[spec.kind] then
    return "fault: kind must be one of http500, http503, throttle, delay, drop, "
      .. "malformed, truncated, skew, code, source_down, page"
  end
  local only = NOT_REQUEST[spec.kind] or ONLY[spec.kind]
  if (PROVIDER_KINDS[provider] and not PROVIDER_KINDS[provider][spec.kind]) or (only and not only[provider]) then
    return "fault: kind " .. spec.kind .. " does not apply to " .. provider
  end
  for _, k in ipairs({ "task_id", "source_url" }) do
    if spec[k] ~= nil and (spec.kind ~= "source_down" or type(spec[k]) ~= "string" or spec[k] == "") then
      return "fault: " .. k .. " must be a non-empty string, for kind source_down only"
    end
  end
end

-- The requests a fault takes (action, count) and how long a delay and a skew
-- are, into `s`: the message when one is wrong, else nil.
local function read_reach(spec, s)
  local action = or_default(spec.action, "*")
  if type(action) ~= "string" or action == "" then
    return "fault: action must be an action name or \"*\""
  end
  local count = or_default(spec.count, 1)
  if type(count) ~= "number" or count < 1 or floor(count) ~= count then
    return "fault: count must be a positive integer"
  end
  local delay_ms = or_default(spec.delay_ms, 1000)
  if type(delay_ms) ~= "number" or delay_ms < 0 or delay_ms > 60000 then
    return "fault: delay_ms must be a number of milliseconds in 0..60000"
  end
  local skew_s = or_default(spec.skew_s, 3600)
  if type(skew_s) ~= "number" then
    return "fault: skew_s must be a number of seconds"
  end
  s.action, s.count, s.delay_ms, s.skew_s = action, count, delay_ms, skew_s
end

-- What a fault answers (retry_after_ms, code, message), when (after_apply)
-- and for how long (duration_s), into `s`: the message when one is wrong,
-- else nil.
local function read_answer(spec, s)
  local retry_after_ms = or_default(spec.retry_after_ms, 1000)
  if type(retry_after_ms) ~= "number" or retry_after_ms < 0 then
    return "fault: retry_after_ms must be a non-negative number"
  end
  local code = or_default(spec.code, 1)
  if type(code) ~= "number" or floor(code) ~= code or code == 0 or code < -2147483648 or code > 4294967295 then
    return "fault: code must be a non-zero integer (a 32-bit code)"
  end
  local message = spec.message
  if message ~= nil and (type(message) ~= "string" or #message > 1000) then
    return "fault: message must be a string of at most 1000 bytes"
  end
  local after_apply = or_default(spec.after_apply, false)
  if type(after_apply) ~= "boolean" then
    return "fault: after_apply must be true or false"
  end
  local duration_s = spec.duration_s
  if duration_s ~= nil and (type(duration_s) ~= "number" or duration_s <= 0) then
    return "fault: duration_s must be a number of seconds above 0"
  end
  s.retry_after_ms, s.code, s.message = retry_after_ms, code, message
  s.after_apply, s.duration_s = after_apply, duration_s
end

-- A page fault's `keep` and `total`, into `s`: the message when one is wrong, else nil.
local function read_page(spec, s)
  local keep, total = spec.keep, spec.total
  if keep ~= nil and (spec.kind ~= "page" or type(keep) ~= "number" or keep < 0 or floor(keep) ~= keep) then
    return "fault: keep must be an integer >= 0, for kind page only"
  end
  if total ~= nil and (spec.kind ~= "page" or (type(total) ~= "number" and total ~= "none")) then
    return "fault: total must be a number or \"none\", for kind page only"
  end
  s.keep, s.total = keep, total
end

-- Validates spec and queues it for `provider` (spec.provider wins). now: the
-- emulator time (for duration_s). Returns the stored fault, or nil and a message.
function M.add(provider, spec, now)
  if type(spec) ~= "table" then
    return nil, "fault: expected a JSON object"
  end
  local err
  provider, err = provider_of(provider, spec)
  if err then
    return nil, err
  end
  local s = {}
  err = check_kind(provider, spec) or read_reach(spec, s) or read_answer(spec, s) or read_page(spec, s)
  if err then
    return nil, err
  end
  local fault = {
    id = next_id,
    provider = provider,
    kind = spec.kind,
    action = s.action,
    count = s.count,
    delay_ms = s.delay_ms,
    skew_s = s.skew_s,
    retry_after_ms = s.retry_after_ms,
    code = s.code,
    message = s.message,
    after_apply = s.after_apply,
    duration_s = s.duration_s,
    ["until"] = s.duration_s and now + s.duration_s or nil,
    task_id = spec.task_id,
    source_url = spec.source_url,
    keep = s.keep,
    total = s.total,
  }
  next_id = next_id + 1
  local list = pending[provider]
  list[#list + 1] = fault
  return fault
end

-- Drops the faults of a list whose period has ended at emulator time now.
local function expire(list, now)
  for i = #list, 1, -1 do
    local f = list[i]
    if f["until"] and now >= f["until"] then
      remove(list, i)
    end
  end
end

-- Takes one use of the oldest fault matching provider/action at emulator
-- time now; returns a copy (with `remaining` set) or nil.
function M.take(provider, action, now)
  local list = pending[provider]
  if not list then
    return nil
  end
  expire(list, now)
  for i, f in ipairs(list) do
    if not NOT_REQUEST[f.kind] and (f.action == "*" or f.action == action) then
      if not f["until"] then
        f.count = f.count - 1
        if f.count <= 0 then
          remove(list, i)
        end
      end
      return {
        id = f.id, kind = f.kind, action = f.action, delay_ms = f.delay_ms,
        skew_s = f.skew_s, retry_after_ms = f.retry_after_ms, code = f.code, message = f.message,
        after_apply = f.after_apply, remaining = f.count, keep = f.keep, total = f.total,
      }
    end
  end
  return nil
end

-- The pending faults by provider (those whose period ended dropped).
function M.list(now)
  for _, list in pairs(pending) do
    expire(list, now)
  end
  return pending
end

function M.reset()
  pending = {}
  for p in pairs(providers) do
    pending[p] = {}
  end
end

return M
