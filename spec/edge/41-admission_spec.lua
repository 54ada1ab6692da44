-- tier: unit
-- The admission decision (issue 69, streamctl.edge.admission): what arrived
-- checked by its rules, then its credential (ZEGO's Token04, Alibaba Cloud's
-- signed URL), then the forbid list (the edge's desired state), then the
-- operator's hook; each refusal with its code and reason; a list that cannot
-- be read refuses unless told otherwise; tokens issued only for streams the
-- decision admits; every decision counted.
local admission = require "streamctl.edge.admission"
local token04 = require "streamctl.edge.token04"
local authkey = require "streamctl.edge.authkey"
local desired = require "streamctl.operator.desired"
local metrics_mod = require "streamctl.operator.metrics"

local APP, SECRET, NOW = 1234567890, "0123456789abcdef0123456789abcdef", 1795800000
local KEY = "aliyun-auth-key-1"

-- A forbid list in this Lua state (what a shared dict holds), and one that cannot be read.
local function list(keys)
  local values = {}
  local dict = {
    get = function(_, k) return values[k] end,
    safe_set = function(_, k, v) values[k] = v return true end,
    delete = function(_, k) values[k] = nil end,
    get_keys = function() local out = {} for k in pairs(values) do out[#out + 1] = k end return out end,
  }
  local s = desired.shdict(dict)
  assert(s:made_whole("the spec"))
  assert(s:add(keys))
  return s
end
local BROKEN = { has = function() return nil, "redis://10.0.0.5:6379: connection refused" end }

local function door(o)
  o = o or {}
  local opts = { forbidden = o.forbidden or list { "zego|banned-1", "aliyun|push.example.com|live|banned" },
                 zego = { app_id = APP, secret = SECRET }, aliyun = { keys = { KEY } },
                 now = function() return NOW end }
  for k, v in pairs(o) do opts[k] = v end
  return assert(admission.new(opts))
end

-- A token of u1's granting r1 and the streams room-1 and banned-1 (`fields` change it; `bare`: no
-- payload at all).
local function token(fields)
  local o = { app_id = APP, secret = SECRET, user_id = "u1", now = NOW - 10, ttl = 3600 }
  if not (fields and fields.bare) then
    o.room_id, o.login, o.publish, o.stream_ids = "r1", true, true, { "room-1", "banned-1" }
  end
  for k, v in pairs(fields or {}) do if k ~= "bare" then o[k] = v end end
  return assert(token04.issue(o))
end

local function verdict(v) return { v.allow, v.code, v.reason } end

describe("the admission decision, ZEGO", function()
  it("admits a stream off the list with a valid token; refuses one on it, at the door", function()
    local d = door()
    assert.same({ true, "Admitted", "zego stream room-1 is not on the forbid list" },
      verdict(d:decide { provider = "zego", stream_id = "room-1", user_id = "u1", token = token() }))
    assert.same({ false, "Forbidden", "zego stream banned-1 is on the forbid list" },
      verdict(d:decide { provider = "zego", stream_id = "banned-1", user_id = "u1", token = token() }))
  end)

  it("refuses a token that is missing, forged, expired, another user's, or does not grant the stream", function()
    local d = door()
    local function why(req)
      req.provider, req.stream_id = "zego", req.stream_id or "room-1"
      local v = d:decide(req)
      assert.is_false(v.allow)
      return v.code .. ": " .. v.reason
    end
    assert.equal("InvalidToken: its token: not a Token04: it does not start with 04", why { user_id = "u1" })
    local other = assert(token04.issue { app_id = APP, secret = string.rep("z", 32), user_id = "u1", now = NOW })
    assert.equal("InvalidToken: its token: does not verify with this secret (a byte changed, or another secret)",
      why { token = other })
    assert.equal("TokenExpired: its token: expired at 2026-11-27T17:19:50Z (now 2026-11-27T17:20:00Z)",
      why { token = token { now = NOW - 20, ttl = 10 } })
    assert.equal("NotGranted: its token is user u1's, not u2's", why { user_id = "u2", token = token() })
    assert.equal("NotGranted: its token does not grant publishing",
      why { token = token { room_id = "r1", login = true, publish = false } })
    -- (a publish grant names its streams: with no payload, or an empty list, ZEGO grants every stream)
    assert.equal("NotGranted: its token grants no stream by name (no payload): a publish grant names its streams",
      why { token = token { bare = true } })
    assert.equal("NotGranted: its token names no stream: a publish grant names its streams",
      why { token = token { stream_ids = {} } })
    assert.equal("NotGranted: its token does not grant publishing zego stream room-1",
      why { token = token { room_id = "r1", login = true, publish = true, stream_ids = { "room-2" } } })
    assert.equal("NotGranted: its token is for room r1, not r9",
      why { room_id = "r9", token = token { room_id = "r1", login = true, publish = true } })
    -- a token granting the stream and the room is admitted
    assert.is_true(d:decide { provider = "zego", stream_id = "room-1", room_id = "r1", user_id = "u1",
      token = token { room_id = "r1", login = true, publish = true, stream_ids = { "room-1" } } }.allow)
  end)

  it("issues a token only for streams the decision admits", function()
    local m = metrics_mod.new()
    local d = door { metrics = m }
    local t = assert(d:issue_token { user_id = "u1", room_id = "r1", login = true, publish = true,
      stream_ids = { "room-1" }, ttl = 600 })
    local read = assert(token04.read(t, { app_id = APP, secret = SECRET, now = NOW + 1 }))
    assert.same({ "u1", NOW + 600, { "room-1" } }, { read.user_id, read.expire, read.stream_ids })
    local none, v = d:issue_token { user_id = "u1", room_id = "r1", login = true, publish = true,
      stream_ids = { "room-1", "banned-1" } }
    assert.is_nil(none)
    assert.same({ false, "Forbidden", "zego stream banned-1 is on the forbid list" }, verdict(v))
    for _, ids in ipairs { false, {} } do
      none, v = d:issue_token { user_id = "u1", room_id = "r1", login = true, publish = true, stream_ids = ids or nil }
      assert.is_nil(none)
      assert.same({ false, "InvalidParameter" }, { v.allow, v.code })
      assert.matches("^stream_ids: a publish grant names its streams", v.reason)
    end
    none, v = d:issue_token { user_id = "bad user", login = true }
    assert.is_nil(none)
    assert.same({ false, "InvalidParameter" }, { v.allow, v.code })
    local text = m:render()
    assert.truthy(text:find('streamctl_tokens_total{provider="zego",result="issued"} 1\n', 1, true), text)
    assert.truthy(text:find('streamctl_tokens_total{provider="zego",result="Forbidden"} 1\n', 1, true), text)
  end)

  it("issues the CBC form when its zego option says so, and reads it back; another door refuses it", function()
    local d = door { zego = { app_id = APP, secret = SECRET, form = "cbc" } }
    local t = assert(d:issue_token { user_id = "u1", room_id = "r1", login = true, publish = true,
      stream_ids = { "room-1" } })
    assert.equal("cbc", assert(token04.read(t, { app_id = APP, secret = SECRET, now = NOW + 1, legacy_cbc = true })).mode)
    local z = { provider = "zego", stream_id = "room-1", user_id = "u1", token = t }
    assert.same({ true, "Admitted" }, { d:decide(z).allow, d:decide(z).code })
    local v = door():decide(z)
    assert.same({ false, "InvalidToken" }, { v.allow, v.code })
    local _, err = admission.new { forbidden = list {}, zego = { app_id = APP, secret = SECRET, form = "ecb" } }
    assert.equal("option 'zego' must name form \"gcm\" or \"cbc\"", err.message)
  end)
end)

describe("the admission decision, Alibaba Cloud", function()
  local function req(name, auth)
    return { provider = "aliyun", domain_name = "push.example.com", app_name = "live", stream_name = name,
             auth_key = auth or authkey.sign { uri = "/live/" .. name, key = KEY, timestamp = NOW + 60 } }
  end
  it("admits a signed URL off the list; refuses one on it, a bad signature, an expired one", function()
    local d = door()
    assert.same({ true, "Admitted", "aliyun stream push.example.com/live/cam-1 is not on the forbid list" },
      verdict(d:decide(req "cam-1")))
    assert.same({ false, "Forbidden", "aliyun stream push.example.com/live/banned is on the forbid list" },
      verdict(d:decide(req "banned")))
    local wrong = authkey.sign { uri = "/live/cam-1", key = "another-key", timestamp = NOW + 60 }
    assert.same({ false, "InvalidMd5Hash" }, { d:decide(req("cam-1", wrong)).allow, d:decide(req("cam-1", wrong)).code })
    local old = authkey.sign { uri = "/live/cam-1", key = KEY, timestamp = NOW - 1 }
    assert.equal("ExpiredAuthKey", d:decide(req("cam-1", old)).code)
    -- without keys the door checks the list alone
    local listonly = door { aliyun = false }
    assert.is_true(listonly:decide(req("cam-1", "not-a-key")).allow)
  end)
end)

describe("the admission decision's list, hook and input", function()
  it("refuses when the list cannot be read, unless on_list_error = \"allow\", saying so either way", function()
    local z = { provider = "zego", stream_id = "room-1", user_id = "u1", token = token() }
    assert.same({ false, "ListUnavailable", "the forbid list cannot be read (redis://10.0.0.5:6379: connection "
      .. "refused): refused, as on_list_error says" }, verdict(door({ forbidden = BROKEN }):decide(z)))
    assert.same({ true, "Admitted", "the forbid list cannot be read (redis://10.0.0.5:6379: connection refused): "
      .. "admitted, as on_list_error says" }, verdict(door({ forbidden = BROKEN, on_list_error = "allow" }):decide(z)))
  end)

  -- (issue 88: during a 3.5 s Sentinel failover every publish was refused; now the list last read whole
  -- answers for list_grace_s, said in the reason and counted, then on_list_error)
  it("answers from the list last read whole within the grace, then as on_list_error says", function()
    local lastlist = require "streamctl.edge.lastlist"
    local clock, members = 100, { "zego|banned-1" }
    local last = lastlist.new({ members = function() return members end }, function() return clock end)
    assert.is_nil(last:has("zego|banned-1")) -- (none read yet)
    assert.is_true(last:refresh())
    members = nil -- (the list cannot be read now: the one read is kept)
    assert.is_nil(last:refresh())
    local m = assert(metrics_mod.new {})
    local d = door { forbidden = BROKEN, last_whole = last, grace_s = 10, metrics = m }
    local function z(id) return { provider = "zego", stream_id = id, user_id = "u1", token = token() } end
    local WHY = "the forbid list cannot be read (redis://10.0.0.5:6379: connection refused)"
    clock = 104
    local v = d:decide(z("banned-1"))
    assert.same({ false, "Forbidden", "zego stream banned-1 is on the forbid list as read whole 4.0 s ago (" .. WHY
      .. "; grace 10 s)", "last" }, { v.allow, v.code, v.reason, v.list })
    v = d:decide(z("room-1"))
    assert.same({ true, "Admitted", "zego stream room-1 is not on the forbid list as read whole 4.0 s ago (" .. WHY
      .. "; grace 10 s)", "last" }, { v.allow, v.code, v.reason, v.list })
    clock = 110.5
    v = d:decide(z("room-1"))
    assert.same({ false, "ListUnavailable", WHY .. "; the list last read whole is 10.5 s old, past the grace (10 s): "
      .. "refused, as on_list_error says", "expired" }, { v.allow, v.code, v.reason, v.list })
    local text = m:render()
    assert.truthy(text:find('streamctl_stale_admissions_total{provider="zego",result="answered"} 2', 1, true), text)
    assert.truthy(text:find('streamctl_stale_admissions_total{provider="zego",result="expired"} 1', 1, true), text)
    -- (no grace: as before)
    v = door({ forbidden = BROKEN, last_whole = last, grace_s = 0 }):decide(z("room-1"))
    assert.same({ false, "ListUnavailable", "unread" }, { v.allow, v.code, v.list })
    -- (a list that answers: its answer, never the one read before)
    clock = 101
    v = door({ last_whole = last, grace_s = 10 }):decide(z("room-1"))
    assert.same({ true, "read" }, { v.allow, v.list })
  end)

  it("asks the operator's hook last: it may refuse; one that raises refuses", function()
    local seen
    local d = door { hook = function(r, v) seen = { r.client_ip, v.code } if r.stream_id == "room-7" then
      return false, "room 7 is closed tonight" end end }
    assert.is_true(d:decide { provider = "zego", stream_id = "room-1", user_id = "u1", token = token(),
      client_ip = "10.1.2.3" }.allow)
    assert.same({ "10.1.2.3", "Admitted" }, seen)
    assert.same({ false, "HookRefused", "room 7 is closed tonight" }, verdict(d:decide { provider = "zego",
      stream_id = "room-7", user_id = "u1", token = token { stream_ids = { "room-7" } } }))
    local raising = door { hook = function() error("boom", 0) end }
    assert.same({ false, "HookFailed", "the hook raised: boom" }, verdict(raising:decide { provider = "zego",
      stream_id = "room-1", user_id = "u1", token = token() }))
  end)

  it("refuses what breaks a field's rule, naming it; counts every decision", function()
    local m = metrics_mod.new()
    local d = door { metrics = m }
    assert.same({ false, "InvalidRequest", "stream_id must be 1 to 256 digits, letters, - and _" },
      verdict(d:decide { provider = "zego", stream_id = "a b" }))
    assert.same({ false, "InvalidRequest", "app_name must be 1 to 256 printable characters, without spaces, /, |, ? "
      .. "or #" }, verdict(d:decide { provider = "aliyun", domain_name = "d", app_name = "a|b", stream_name = "s" }))
    assert.same({ false, "InvalidRequest", "provider must be \"aliyun\" or \"zego\"" },
      verdict(d:decide { provider = "other" }))
    local text = m:render()
    assert.truthy(text:find('streamctl_admissions_total{provider="zego",verdict="deny",code="InvalidRequest"} 1\n',
      1, true), text)
    assert.truthy(text:find('streamctl_admissions_total{provider="unknown",verdict="deny",code="InvalidRequest"} 1\n',
      1, true), text)
    assert.truthy(text:find('streamctl_admission_duration_seconds_count{provider="zego",action="admission"} 1\n', 1,
      true), text)
    local _, err = admission.new { zego = { app_id = APP, secret = SECRET } }
    assert.equal("option 'forbidden' is required", err.message)
    _, err = admission.new { forbidden = BROKEN, on_list_error = "maybe" }
    assert.equal("option 'on_list_error' must be one of 'deny', 'allow'", err.message)
  end)
end)
