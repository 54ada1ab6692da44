-- sanitizers: none (what it tests runs in nginx, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- streamctl inside a real nginx (Debian's nginx + lua-nginx-module, LuaJIT),
-- against the emulator:
--   * examples/openresty as a user copies it (nginx.conf with only its ports,
--     paths and CA rewritten here): both providers end to end over verified
--     HTTPS, 401, 400 with nothing sent, /metrics, the timer that re-applies
--     forbids, and an untrusted CA failing closed;
--   * a driver nginx (the module below) for what the example cannot show
--     alone: 50 concurrent requests to one worker while the provider takes
--     500 ms to answer, four workers sharing one budget and one Sequence per
--     stream, and which transport each phase gets.
-- Every server is started here on 127.0.0.1 and stopped at the end.
local cjson = require "cjson"
local socket = require "socket"
local nginx = require "spec.helpers.nginx"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"
local wait_for = require("spec.helpers.checks").wait_until

local edge_helper = require "spec.helpers.edge"
local TOKEN, ALI_KEY, ALI_SECRET = edge_helper.TOKEN, edge_helper.ALI_KEY, edge_helper.ALI_SECRET
local ZEGO_APP, ZEGO_SECRET = edge_helper.ZEGO_APP, edge_helper.ZEGO_SECRET
local raw_request, concurrently, post, get, decode = edge_helper.raw_request, edge_helper.concurrently,
  edge_helper.post, edge_helper.get, edge_helper.decode
local start_edge = edge_helper.start_edge

-- The entries of the emulator's log (requests a delay fault held) that reached it when no earlier one was
-- held there any more: at or after every earlier one's answer (real_time and duration_ms, the emulator's
-- own clock; a millisecond of rounding given to the answer).
local function alone(entries)
  local sorted = {}
  for i, e in ipairs(entries) do sorted[i] = e end
  table.sort(sorted, function(a, b) return a.real_time < b.real_time end)
  local out, free_at = {}, -math.huge
  for _, e in ipairs(sorted) do
    if e.real_time >= free_at then out[#out + 1] = e end
    free_at = math.max(free_at, e.real_time + (e.duration_ms - 1) / 1000)
  end
  return out
end

local function entries(emulator)
  return (emulator:log({ limit = 10000 }))
end

local available, why_not = nginx.available()
assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

describe("the OpenResty example", function()
  local emulator, edge
  lazy_setup(function()
    emulator = emu.start {}
    edge = start_edge(emulator, {})
  end)
  lazy_teardown(function()
    if edge then edge:stop() end
    if emulator then emulator:stop() end
  end)
  before_each(function() emulator:reset() end)

  local function edge_post(path, body, token)
    return post(edge.ports[1], path, body, token == nil and TOKEN or token or nil)
  end

  it("forbids and resumes Aliyun streams over verified HTTPS, answering the per-stream report", function()
    local res = edge_post("/streams/aliyun/forbid",
      '{"domain_name":"push.example.com","app_name":"live","stream_names":["a","b"],"resume_time":"2099-01-01T00:00:00Z"}')
    assert.equal(200, res.status, res.body)
    assert.equal("application/json", res.headers["content-type"])
    local report = decode(res)
    assert.same({ "ForbidLiveStream", 2, 2, 0, 0 },
      { report.action, report.total, report.succeeded, report.failed, report.unknown })
    assert.same({ "a", true, 1 }, { report.results[1].stream, report.results[1].ok, report.results[1].attempts })
    assert.equal("b", report.results[2].stream)
    assert.truthy(report.results[1].request_id)
    -- each forbid's end: the ResumeTime it sent
    assert.same({ "2099-01-01T00:00:00Z", "resume_time" }, { report.results[1].ends, report.results[1].ends_by })
    local streams = emulator:state().aliyun.streams
    assert.equal("forbidden", streams["push.example.com/live/a"].status)
    assert.equal("forbidden", streams["push.example.com/live/b"].status)
    for _, e in ipairs(entries(emulator)) do
      assert.same({ "https", "ok" }, { e.scheme, e.verdict })
    end

    res = edge_post("/streams/aliyun/resume", '{"domain_name":"push.example.com","app_name":"live","stream_name":"a"}')
    assert.equal(200, res.status, res.body)
    report = decode(res)
    assert.same({ "ResumeLiveStream", 1, 1 }, { report.action, report.total, report.succeeded })
    streams = emulator:state().aliyun.streams
    assert.equal("normal", streams["push.example.com/live/a"].status)
    assert.equal("forbidden", streams["push.example.com/live/b"].status)

    -- a body that asks the block list's places first, past them: a 409 naming them, nothing forbidden
    local before = #emulator:log { action = "ForbidLiveStream", limit = 100 }
    res = edge_post("/streams/aliyun/forbid", '{"domain_name":"push.example.com","app_name":"live",'
      .. '"stream_names":["c","d"],"check_places":true,"places_limit":2}')
    assert.equal(409, res.status, res.body)
    report = decode(res)
    assert.same({ "BlockListFull", { used = 1, limit = 2, needed = 2, domains = 1 } }, { report.code, report.places })
    assert.equal(before, #emulator:log { action = "ForbidLiveStream", limit = 100 })
    -- and /metrics shows the places the check left: 2 - 1
    local metrics = get(edge.ports[1], "/metrics").body
    assert.truthy(metrics:find('\nstreamctl_blocklist_places_left{provider="aliyun"} 1\n', 1, true), metrics)
  end)

  it("forbids and resumes ZEGO RTC streams, many or one", function()
    local ids = {}
    for i = 1, 25 do ids[i] = "rtc-" .. i end
    local res = edge_post("/streams/zego/forbid", cjson.encode { stream_ids = ids })
    assert.equal(200, res.status, res.body)
    local report = decode(res)
    assert.same({ "ForbidRTCStreams", 25, 25, 2 }, { report.action, report.total, report.succeeded, report.calls })
    local streams = emulator:state().zego.streams[ZEGO_APP]
    for _, id in ipairs(ids) do assert.equal("forbidden", streams[id].rtc) end
    res = edge_post("/streams/zego/resume", '{"stream_id":"rtc-7"}')
    assert.equal(200, res.status, res.body)
    assert.equal(1, decode(res).succeeded)
    streams = emulator:state().zego.streams[ZEGO_APP]
    assert.equal("normal", streams["rtc-7"].rtc)
    assert.equal("forbidden", streams["rtc-8"].rtc)
  end)

  it("answers 401 without the token or with a wrong one, and sends nothing", function()
    local body = '{"domain_name":"push.example.com","app_name":"live","stream_name":"a"}'
    for _, token in ipairs { false, "wrong", TOKEN .. "x", TOKEN:sub(1, -2) } do
      local res = edge_post("/streams/aliyun/resume", body, token)
      assert.equal(401, res.status, edge:error_log())
      assert.equal('Bearer realm="streamctl"', res.headers["www-authenticate"])
      assert.same({ error = "a valid 'Authorization: Bearer <token>' header is required" }, decode(res))
    end
    assert.same({}, entries(emulator))
  end)

  it("answers 400 naming the field for a bad body, and sends nothing", function()
    local cases = {
      { "/streams/aliyun/resume", "not json", "body: must be a JSON object" },
      { "/streams/aliyun/resume", '["a"]', "body: must be a JSON object" },
      { "/streams/aliyun/resume", '{"domain_name":"d.example","app_name":"live","stream_nme":"a"}',
        "field 'stream_nme' is not a field of aliyun.resume_live_streams (did you mean 'stream_names'?)" },
      { "/streams/aliyun/resume", '{"domain_name":"d.example","app_name":null,"stream_name":"a"}',
        "field 'app_name' must not be null" },
      { "/streams/aliyun/resume", '{"domain_name":"d.example","app_name":"live","stream_name":5}',
        "field 'stream_name' must be a string" },
      { "/streams/aliyun/resume", '{"domain_name":"d.example","app_name":"live","stream_name":"a","stream_names":["b"]}',
        "fields 'stream_name' and 'stream_names': give one of them" },
      { "/streams/aliyun/forbid", '{"app_name":"live","stream_name":"a"}',
        "field 'domain_name' is required" },
      { "/streams/zego/forbid", '{"stream_ids":[]}', "field 'stream_ids' must have at least 1 item (got 0)" },
      { "/streams/zego/resume", '{"stream_ids":["a\\nb"]}', "field 'stream_ids' item 1 must not contain CR, LF or NUL" },
    }
    for _, case in ipairs(cases) do
      local res = edge_post(case[1], case[2])
      assert.equal(400, res.status, case[2] .. " -> " .. tostring(res.body))
      assert.same({ error = case[3] }, decode(res))
    end
    assert.same({}, entries(emulator))
  end)

  it("counts every attempt in /metrics, in the Prometheus text format", function()
    assert.equal(200, edge_post("/streams/zego/resume", '{"stream_ids":["m1","m2"]}').status)
    emulator:faults { kind = "throttle", action = "ResumeLiveStream", count = 1, retry_after_ms = 10 }
    assert.equal(200, edge_post("/streams/aliyun/resume", '{"domain_name":"d.example","app_name":"live","stream_name":"m"}').status)
    local res = get(edge.ports[1], "/metrics")
    assert.equal(200, res.status)
    assert.equal("text/plain; version=0.0.4", res.headers["content-type"])
    local text = res.body
    local function value(series)
      local v = text:match("\n" .. series:gsub("[%p]", "%%%0") .. " ([%d.]+)\n")
      assert(v, "no " .. series .. " in:\n" .. text)
      return tonumber(v)
    end
    local ali = '{provider="aliyun",action="ResumeLiveStream"}'
    -- Counters only grow: earlier specs' attempts are in them too, so compare with the emulator's view.
    assert.is_true(value("streamctl_requests_total" .. ali) >= 2)
    assert.is_true(value("streamctl_retries_total" .. ali) >= 1)
    assert.is_true(value("streamctl_throttled_total" .. ali) >= 1)
    assert.equal(value("streamctl_throttled_total" .. ali), value("streamctl_failures_total" .. ali))
    assert.is_true(value('streamctl_requests_total{provider="zego",action="ResumeRTCStreams"}') >= 1)
    local count = value("streamctl_request_duration_seconds_count" .. ali)
    assert.equal(value("streamctl_requests_total" .. ali), count)
    assert.equal(count, value('streamctl_request_duration_seconds_bucket{provider="aliyun",action="ResumeLiveStream",le="+Inf"}'))
    assert.truthy(text:find("# TYPE streamctl_request_duration_seconds histogram\n", 1, true))
    assert.truthy(text:find("# TYPE streamctl_throttled_total counter\n", 1, true))
    -- Waits of under a millisecond are made 1 ms: nginx would not yield for them (and warns).
    assert.is_nil(edge:error_log():find("ngx.sleep(0)", 1, true))
    -- Prometheus' own checker parses it and lints its names and units (spec/75: it catches what it is for)
    local dir = process.temp_dir()
    process.write_file(dir .. "/metrics.txt", text)
    local said = process.capture("promtool check metrics < " .. process.quote(dir .. "/metrics.txt")
      .. " 2>&1; echo \"rc=$?\"")
    process.run("rm -rf " .. process.quote(dir))
    assert.equal("rc=0\n", said)
  end)

  it("shows no secret, signature or token in its answers or its error log, failures included", function()
    emulator:faults { kind = "http500", action = "ResumeLiveStream", count = 3 }
    emulator:faults { kind = "throttle", action = "ForbidRTCStreams", count = 3, retry_after_ms = 10 }
    local answers = {
      edge_post("/streams/aliyun/resume", '{"domain_name":"d.example","app_name":"live","stream_name":"x"}'),
      edge_post("/streams/zego/forbid", '{"stream_ids":["z"]}'),
      edge_post("/streams/aliyun/forbid", '{"domain_name":"d.example","app_name":"live","stream_name":"y"}'),
      edge_post("/streams/zego/resume", '{"stream_id":"z"}'),
      edge_post("/streams/zego/resume", '{"stream_id":"z"}', "wrong-token"),
    }
    local text = edge:error_log()
    for _, res in ipairs(answers) do text = text .. (res.body or res.raw or "") end
    for _, secret in ipairs { ALI_SECRET, ZEGO_SECRET, TOKEN } do
      assert.is_nil(text:find(secret, 1, true), secret)
    end
    assert.is_nil(text:find("Signature=%x"))
    assert.is_nil(text:find("Signature=[%w%%]+&"))
  end)

  it("refuses to start without a token: fails closed", function()
    local ok, err = pcall(start_edge, emulator, { env = { STREAMCTL_EDGE_TOKEN = "" } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("STREAMCTL_EDGE_TOKEN is not set", 1, true), tostring(err))
  end)

  -- (issue 88: each of these once made the door answer 500 or verify nothing: Alibaba Cloud's remote
  -- authentication takes a 500 as a pass by default)
  for _, case in ipairs {
    { { STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR = "Deny" }, 'STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR must be "deny" or "allow" '
      .. "(got Deny)" },
    { { STREAMCTL_ALIYUN_AUTH_KEY = "," }, "STREAMCTL_ALIYUN_AUTH_KEY must be a key, or \"new,old\" during a rotation" },
    { { ZEGO_CALLBACK_SECRET = "new, old" }, "ZEGO_CALLBACK_SECRET must be a key, or \"new,old\"" },
    { { ZEGO_SERVER_SECRET = "short" }, "ZEGO_SERVER_SECRET must be the ServerSecret's 32 characters (got 5)" },
    { { ZEGO_APP_ID = "12345x" }, "ZEGO_APP_ID must be the AppId in decimal digits (got 12345x)" },
    { { STREAMCTL_EDGE_ADOPT = "yes" }, 'STREAMCTL_EDGE_ADOPT must be "aliyun"' },
    { { STREAMCTL_EDGE_ISSUER_TOKEN = edge_helper.TOKEN }, "STREAMCTL_EDGE_ISSUER_TOKEN must differ from "
      .. "STREAMCTL_EDGE_TOKEN" },
  } do
    local name = next(case[1])
    it("refuses to start with " .. name .. "=" .. case[1][name] .. ", naming it", function()
      local ok, err = pcall(start_edge, emulator, { env = case[1] })
      assert.is_false(ok)
      assert.truthy(tostring(err):find(case[2], 1, true), tostring(err))
    end)
  end
end)

describe("the OpenResty example with STREAMCTL_REDIS_URL", function()
  local redis_helper = require "spec.helpers.redis"
  local emulator, edge, redis
  lazy_setup(function()
    emulator = emu.start {}
    redis = redis_helper.start { password = "edge-redis-pw" }
    edge = start_edge(emulator, { env = { STREAMCTL_REDIS_URL = redis.url } })
  end)
  lazy_teardown(function()
    if edge then edge:stop() end
    if redis then redis:stop() end
    if emulator then emulator:stop() end
  end)

  it("keeps its ZEGO Sequences in Redis (over cosockets), and never logs the password", function()
    local res = post(edge.ports[1], "/streams/zego/resume", '{"stream_ids":["r1","r2"]}', TOKEN)
    assert.equal(200, res.status, res.body)
    local seq = assert(emulator:log({ provider = "zego", limit = 10 })[1]).sequence
    for _, id in ipairs { "r1", "r2" } do
      assert.equal(tostring(seq), redis:cli("GET", "streamctl:{zego:" .. ZEGO_APP .. "}:seq:" .. id))
    end
    assert.is_nil(edge:error_log():find("edge-redis-pw", 1, true))
  end)

  it("keeps the desired state in Redis for many edges: a forbid through one, a publish callback to the other, "
    .. "forbidden again", function()
    local key, domain = "notify-key-0123456789", "push.example.com"
    local other = start_edge(emulator, { env = { STREAMCTL_REDIS_URL = redis.url, STREAMCTL_ALIYUN_NOTIFY_KEY = key,
                                                 STREAMCTL_ALIYUN_NOTIFY_DOMAIN = domain } })
    local ok, err = pcall(function()
      local res = post(edge.ports[1], "/streams/aliyun/forbid",
        '{"domain_name":"push.example.com","app_name":"live","stream_name":"shared-1"}', TOKEN)
      assert.equal(200, res.status, res.body)
      assert.equal("1", redis:cli("SISMEMBER", "{streamctl:desired}:set", "aliyun|push.example.com|live|shared-1"))
      emulator:reset()
      local t = tostring(edge_helper.fresh_ts())
      local req = raw_request("GET", "/callbacks/aliyun?action=publish&id=shared-1&app=" .. domain
        .. "&appname=live&time=" .. t, nil, { ["ALI-LIVE-TIMESTAMP"] = t,
        ["ALI-LIVE-SIGNATURE"] = require("streamctl.core").digest_hex("md5", "|", false, domain, t, key) })
      assert.equal(200, concurrently(other.ports[1], { req }, 30)[1].status)
      -- The other edge's own count says it made the reaction, once. (The emulator's log may hold more
      -- than one forbid of the stream: on a loaded machine an attempt held past the client's timeout
      -- is sent again, and one of the first edge's held attempts is logged when it is let go, after
      -- the reset: a loaded make test under ASan saw two.)
      local made = 'streamctl_reactions_total{provider="aliyun",reaction="forbid_again",result="ok"} 1'
      assert.is_truthy(wait_for(function() return get(other.ports[1], "/metrics").body:find(made, 1, true) end, 30),
        "the other edge did not forbid it again")
      local sent = emulator:log { action = "ForbidLiveStream", limit = 10 }
      assert.is_true(#sent >= 1, "no forbid reached the emulator")
      for _, e in ipairs(sent) do assert.equal("shared-1", e.params.StreamName) end
      assert.equal("forbidden", emulator:state().aliyun.streams["push.example.com/live/shared-1"].status)
      -- a resume through the second edge takes it off the list for both
      res = post(other.ports[1], "/streams/aliyun/resume",
        '{"domain_name":"push.example.com","app_name":"live","stream_name":"shared-1"}', TOKEN)
      assert.equal(200, res.status, res.body)
      assert.equal("0", redis:cli("SISMEMBER", "{streamctl:desired}:set", "aliyun|push.example.com|live|shared-1"))
    end)
    other:stop()
    assert(ok, err)
  end)

  it("refuses to start with a bad STREAMCTL_REDIS_URL, naming it", function()
    local ok, err = pcall(start_edge, emulator, { env = { STREAMCTL_REDIS_URL = "redis://127.0.0.1:99999" } })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("STREAMCTL_REDIS_URL", 1, true), tostring(err))
  end)
end)

-- Runs `fn(emulator, edge, dir)` against a fresh emulator and an edge made by
-- `edge_opts(dir)` (dir: a temporary directory for the spec's files), and
-- stops both whatever `fn` does.
local function with_edge(edge_opts, fn)
  local emulator = emu.start {}
  local dir = nginx.temp_dir()
  local edge
  local ok, err = pcall(function()
    edge = start_edge(emulator, edge_opts(dir))
    fn(emulator, edge, dir)
  end)
  if edge then edge:stop() end
  emulator:stop()
  os.execute("rm -rf " .. nginx.quote(dir))
  assert(ok, err)
end

describe("the OpenResty example, against a CA it does not trust", function()
  it("fails closed with TLSError: nothing reaches the provider", function()
    with_edge(function(dir)
      nginx.make_ca(dir, "other")
      return { ca_file = dir .. "/other.pem" }
    end, function(emulator, edge)
      local res = post(edge.ports[1], "/streams/zego/resume", '{"stream_id":"s"}', TOKEN)
      assert.equal(502, res.status, res.body)
      local r = decode(res).results[1]
      assert.same({ "s", false, "TLSError" }, { r.stream, r.ok, r.code }, r.message)
      -- nginx reports the check's failure either way: "21: unable to verify the first
      -- certificate", or (when it completes asynchronously) a connection closed in the handshake.
      assert.truthy(r.message:find("^TLS handshake with https://127%.0%.0%.1:%d+ failed: .*verif"), r.message)
      assert.truthy(edge:error_log():find("lua ssl certificate verify error: (21: unable to verify the first "
        .. "certificate)", 1, true))
      assert.same({}, entries(emulator))
    end)
  end)
end)

describe("the OpenResty example's desired state", function()
  it("refuses a forbids file that is not whole and valid (a name out of its rule, a list given as an object): "
    .. "said, nothing kept or sent (issue 47)", function()
    local list
    with_edge(function(dir)
      list = dir .. "/forbids.json"
      nginx.write_file(list, '{"aliyun":[{"domain_name":"push.example.com","app_name":"live",'
        .. '"stream_names":["x","y # keep"]}],"zego":["z1"]}')
      return { env = { STREAMCTL_EDGE_FORBIDS = list, STREAMCTL_EDGE_RECONCILE_S = "1" } }
    end, function(emulator, edge)
      local expected = "STREAMCTL_EDGE_FORBIDS: " .. list .. ": aliyun[1].stream_names[2]: stream_name must hold "
        .. "only letters, digits, '-' and '_' (found a space at byte 2) (a '#' after a name is not a comment"
      local deadline = socket.gettime() + 10
      while not edge:error_log():find(expected, 1, true) and socket.gettime() < deadline do socket.sleep(0.1) end
      assert.truthy(edge:error_log():find(expected, 1, true), edge:error_log())
      socket.sleep(1.5) -- (a round or more: nothing of the file was kept, so nothing is forbidden)
      assert.equal(0, #emulator:log { action = "ForbidLiveStream", limit = 10 })
      assert.equal(0, #emulator:log { action = "ForbidRTCStreams", limit = 10 })
    end)
  end)

  it("reconciles the forbid list: a forbid lifted behind its back is one ForbidLiveStream, not one per stream; "
    .. "a resume through the edge takes a stream off the list", function()
    local audit_path
    with_edge(function(dir)
      local list = dir .. "/forbids.json"
      nginx.write_file(list, cjson.encode {
        aliyun = { { domain_name = "push.example.com", app_name = "live", stream_names = { "x", "y", "w" } } },
        zego = { "z1", "z2" },
      })
      audit_path = dir .. "/audit.jsonl"
      return { env = { STREAMCTL_EDGE_FORBIDS = list, STREAMCTL_EDGE_RECONCILE_S = "1", STREAMCTL_EDGE_AUDIT_LOG = audit_path } }
    end, function(emulator, edge)
      local function status(name) return (emulator:state().aliyun.streams["push.example.com/live/" .. name] or {}).status end
      local function forbidden()
        local z = emulator:state().zego.streams[ZEGO_APP] or {}
        return status("x") == "forbidden" and status("y") == "forbidden" and status("w") == "forbidden"
          and z.z1 and z.z1.rtc == "forbidden" and z.z2 and z.z2.rtc == "forbidden"
      end
      local deadline = socket.gettime() + 10
      while not forbidden() and socket.gettime() < deadline do socket.sleep(0.1) end
      assert.is_true(forbidden(), "the list was not applied within 10 s")
      -- resumed behind the edge's back: the next round forbids that one stream, in one call
      local ali = assert(require("streamctl.aliyun").new { endpoint = emulator.aliyun_url, rate_limits = false,
        access_key_id = ALI_KEY, access_key_secret = ALI_SECRET })
      assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "x" })
      deadline = socket.gettime() + 10
      while status("x") ~= "forbidden" and socket.gettime() < deadline do socket.sleep(0.05) end
      assert.equal("forbidden", status("x"), "not forbidden again within 10 s")
      socket.sleep(1.5) -- (another round: nothing more to send)
      -- every ForbidLiveStream so far: the first round's three, then x alone
      local forbids = {}
      for _, e in ipairs(emulator:log { action = "ForbidLiveStream", limit = 1000 }) do
        forbids[#forbids + 1] = e.params.StreamName
      end
      table.sort(forbids, function(a, b) return a < b end)
      assert.same({ "w", "x", "x", "y" }, forbids)
      -- a resume through the edge: off the list, and left alone after (an extra, not forbidden again)
      local res = post(edge.ports[1], "/streams/aliyun/resume",
        '{"domain_name":"push.example.com","app_name":"live","stream_name":"y"}', TOKEN)
      assert.equal(200, res.status, res.body)
      socket.sleep(2.5)
      assert.equal("normal", status("y"))
      local metrics = get(edge.ports[1], "/metrics").body
      assert.matches('streamctl_drift_total{provider="aliyun",state="found"} 4', metrics, 1, true)
      assert.matches('streamctl_drift_total{provider="aliyun",state="fixed"} 4', metrics, 1, true)
      assert.matches('streamctl_drift_total{provider="aliyun",state="failed"} 0', metrics, 1, true)
      assert.matches('streamctl_drift_total{provider="zego",state="fixed"} 2', metrics, 1, true)
      -- the timer's rounds ran whole: no error, and their audit lines written (from a timer: no request)
      local log = edge:error_log()
      assert.is_nil(log:find("reconciling (", 1, true), log)
      assert.is_nil(log:find("the audit log", 1, true), log)
      local audit_text = assert(nginx.read_file(audit_path))
      local rounds = 0
      for line in audit_text:gmatch("[^\n]+") do
        local v = cjson.decode(line)
        if v.command == "reconcile" then
          rounds = rounds + 1
          assert.equal("the edge (timer)", v.user)
        end
      end
      assert.is_true(rounds >= 3, "reconcile lines: " .. rounds) -- (Aliyun's first and x's, ZEGO's first)
    end)
  end)

  it("needs confirm for more than STREAMCTL_EDGE_MAX_FORBID streams (nothing sent without it); one audit line "
    .. "per request, mode 0600, no secret", function()
    local log_path
    with_edge(function(dir)
      log_path = dir .. "/audit/audit.jsonl"
      return { env = { STREAMCTL_EDGE_MAX_FORBID = "2", STREAMCTL_EDGE_AUDIT_LOG = log_path } }
    end, function(emulator, edge)
      local body = '{"domain_name":"push.example.com","app_name":"live","stream_names":["a","b","c"]}'
      local res = post(edge.ports[1], "/streams/aliyun/forbid", body, TOKEN)
      assert.equal(400, res.status)
      local v = decode(res)
      assert.equal("TooManyStreams", v.code)
      assert.same({ allowed = false, confirmed = false, count = 3, max_forbid = 2 }, v.guard)
      assert.equal(0, #emulator:log { action = "ForbidLiveStream", limit = 10 })
      res = post(edge.ports[1], "/streams/aliyun/forbid", body:gsub("}$", ',"confirm":true}'), TOKEN)
      assert.equal(200, res.status, res.body)
      assert.equal(3, #emulator:log { action = "ForbidLiveStream", limit = 10 })
      local text = assert(nginx.read_file(log_path))
      local lines = {}
      for line in text:gmatch("[^\n]+") do lines[#lines + 1] = cjson.decode(line) end
      assert.equal(3, #lines)
      assert.same({ "refused", 400, "POST /streams/aliyun/forbid", ALI_KEY },
        { lines[1].outcome, lines[1].exit, lines[1].command, lines[1].credential or ALI_KEY })
      -- the intent (before the first ForbidLiveStream left), then the outcome of the same run
      assert.same({ "intent", 3, { stream = "a", action = "ForbidLiveStream" }, true },
        { lines[2].record, lines[2].count, lines[2].streams[1], lines[2].guard.confirmed })
      assert.same({ "outcome", lines[2].run, "ok", 200, 3, 3, true }, { lines[3].record, lines[3].run, lines[3].outcome,
        lines[3].exit, #lines[3].streams, lines[3].calls, lines[3].guard.confirmed })
      assert.same({ stream = "a", action = "ForbidLiveStream", outcome = "ok", request_id = lines[3].streams[1].request_id,
                    ends = lines[3].streams[1].ends, ends_by = "provider_default" }, lines[3].streams[1])
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", lines[3].streams[1].ends)
      assert.matches("^edge token from 127%.0%.0%.1$", lines[3].user)
      assert.is_nil(text:find(ALI_SECRET, 1, true))
      assert.is_nil(text:find(TOKEN, 1, true))
      assert.equal("rw-------", require("lfs").attributes(log_path, "permissions"))
    end)
  end)

  it("needs confirm for more than STREAMCTL_EDGE_MAX_RESUME resumes too; a field out of its rule is a 400 with no "
    .. "intent (issue 47)", function()
    local log_path
    with_edge(function(dir)
      log_path = dir .. "/audit/audit.jsonl"
      return { env = { STREAMCTL_EDGE_MAX_RESUME = "2", STREAMCTL_EDGE_AUDIT_LOG = log_path } }
    end, function(emulator, edge)
      local body = '{"domain_name":"push.example.com","app_name":"live","stream_names":["a","b","c","a"]}'
      local res = post(edge.ports[1], "/streams/aliyun/resume", body, TOKEN)
      assert.equal(400, res.status)
      local v = decode(res)
      assert.equal("TooManyStreams", v.code)
      assert.same({ allowed = false, confirmed = false, count = 0, max_forbid = 100, resumes = 3, max_resume = 2 },
        v.guard)
      -- a name a forbid cannot take ('#' and a space): refused before anything is recorded as about to be sent
      res = post(edge.ports[1], "/streams/aliyun/forbid",
        '{"domain_name":"push.example.com","app_name":"live","stream_names":["a # keep"]}', TOKEN)
      assert.equal(400, res.status, res.body)
      assert.matches("stream_names", decode(res).error, 1, true)
      assert.equal(0, #emulator:log { limit = 10 })
      local text = assert(nginx.read_file(log_path))
      for line in text:gmatch("[^\n]+") do
        local rec = cjson.decode(line)
        assert.is_not.equal("intent", rec.record, line)
      end
      res = post(edge.ports[1], "/streams/aliyun/resume", body:gsub("}$", ',"confirm":true}'), TOKEN)
      assert.equal(200, res.status, res.body)
      assert.equal(3, #emulator:log { action = "ResumeLiveStream", limit = 10 })
    end)
  end)
end)

describe("the OpenResty example's callbacks", function()
  local NOTIFY_KEY, DOMAIN, ZEGO_CB_SECRET, CB_TOKEN = "notify-key-0123456789", "push.example.com",
    "zego-callback-secret", "relay-token-abc123"
  local core = require "streamctl.core"
  local function callback_env()
    return { env = { STREAMCTL_ALIYUN_NOTIFY_KEY = NOTIFY_KEY, STREAMCTL_ALIYUN_NOTIFY_DOMAIN = DOMAIN,
                     ZEGO_CALLBACK_SECRET = ZEGO_CB_SECRET, STREAMCTL_EDGE_CALLBACK_TOKEN = CB_TOKEN,
                     STREAMCTL_EDGE_TASK_REGION = "cn-shanghai" } }
  end
  -- An ingest callback as Alibaba Cloud sends it, signed with `key` at `ts`.
  local function ali_publish(port, stream, ts, key, action)
    local t = tostring(ts or edge_helper.fresh_ts())
    local path = "/callbacks/aliyun?action=" .. (action or "publish") .. "&ip=10.0.0.9&id=" .. stream .. "&app="
      .. DOMAIN .. "&appname=live&time=" .. t .. "&node=n1"
    local req = raw_request("GET", path, nil, { ["ALI-LIVE-TIMESTAMP"] = t,
      ["ALI-LIVE-SIGNATURE"] = core.digest_hex("md5", "|", false, DOMAIN, t, key or NOTIFY_KEY) })
    return concurrently(port, { req }, 30)[1]
  end
  -- The emulator's entries for `action` on stream `name` (StreamName or StreamId).
  local function sent(emulator, action, name)
    local out = {}
    for _, e in ipairs(emulator:log { action = action, limit = 10000 }) do
      for _, id in ipairs(e.stream_ids or {}) do -- (ZEGO's; Aliyun's is StreamName)
        if id == name then out[#out + 1] = e end
      end
      if e.params.StreamName == name then out[#out + 1] = e end
    end
    return out
  end

  it("forbids again, by its reaction, a listed stream whose publish callback arrives; refuses forged, stale "
    .. "and replayed ones (401) and sends nothing for them", function()
    with_edge(callback_env, function(emulator, edge)
      local port = edge.ports[1]
      local res = post(port, "/streams/aliyun/forbid",
        '{"domain_name":"push.example.com","app_name":"live","stream_name":"listed"}', TOKEN)
      assert.equal(200, res.status, res.body)
      -- lifted behind the edge's back, and the stream publishes again
      emulator:reset()
      local answer = ali_publish(port, "listed")
      assert.equal(200, answer.status, answer.body)
      assert.is_truthy(wait_for(function() return #sent(emulator, "ForbidLiveStream", "listed") >= 1 end,
        5 * process.slowdown()), "not forbidden again")
      local again = sent(emulator, "ForbidLiveStream", "listed")[1]
      assert.equal("ok", again.verdict)
      -- (by the callback's reaction, counted below, within the bounded wait: the reconcile timer's next
      -- round is 60 s away. That the reaction's forbid is held for no slot beyond its budget's next is
      -- the pacing's, on a simulated clock: spec/pipeline/14's "pace one budget through the dict" and
      -- spec/engine/06's "gives callers arriving slower than the rate no delay")
      -- a stream that is not listed: answered, nothing sent
      assert.equal(200, ali_publish(port, "free").status)
      -- forged, stale, replayed: 401, nothing sent
      assert.equal(401, ali_publish(port, "listed2", nil, "wrong-key").status)
      assert.equal(401, ali_publish(port, "listed", os.time() - 301).status)
      local t = edge_helper.fresh_ts()
      assert.equal(200, ali_publish(port, "free2", t).status)
      assert.equal(401, ali_publish(port, "free2", t).status)
      socket.sleep(0.3)
      -- (nothing for them: every forbid logged is the listed stream's, its attempts a loaded machine held
      -- past the client's timeout and sent again included)
      for _, e in ipairs(emulator:log { action = "ForbidLiveStream", limit = 100 }) do
        assert.equal("listed", e.params.StreamName)
      end
      local metrics = get(port, "/metrics").body
      for _, line in ipairs {
        'streamctl_callbacks_total{provider="aliyun",event="publish",result="accepted"} 3',
        'streamctl_callbacks_total{provider="aliyun",event="unverified",result="InvalidSignature"} 1',
        'streamctl_callbacks_total{provider="aliyun",event="unverified",result="StaleCallback"} 1',
        'streamctl_callbacks_total{provider="aliyun",event="unverified",result="ReplayedCallback"} 1',
        'streamctl_reactions_total{provider="aliyun",reaction="forbid_again",result="ok"} 1',
      } do
        assert.truthy(metrics:find(line, 1, true), line .. " not in:\n" .. metrics)
      end
      assert.is_nil(edge:error_log():find(NOTIFY_KEY, 1, true))
    end)
  end)

  it("ZEGO: forbids again a listed stream whose stream_create arrives, its audit lines naming it; a bad "
    .. "signature is 401", function()
    local audit_path
    with_edge(function(dir)
      local o = callback_env()
      audit_path = dir .. "/audit.jsonl"
      o.env.STREAMCTL_EDGE_AUDIT_LOG = audit_path
      return o
    end, function(emulator, edge)
      local port = edge.ports[1]
      assert.equal(200, post(port, "/streams/zego/forbid", '{"stream_id":"z-listed"}', TOKEN).status)
      emulator:reset()
      -- (a replay repeats the timestamp too: the same `ts` for every call, so that a second passing
      -- between them, under valgrind, does not make a new signature)
      local ts = tostring(edge_helper.fresh_ts())
      local function created(stream, secret, nonce)
        return post(port, "/callbacks/zego", cjson.encode { event = "stream_create", appid = ZEGO_APP, timestamp = ts,
          nonce = nonce, stream_id = stream, room_id = "r",
          signature = core.digest_hex("sha1", "", true, secret or ZEGO_CB_SECRET, ts, nonce) })
      end
      local answer = created("z-listed", nil, "1001")
      assert.equal(200, answer.status, answer.body)
      -- (forbidden again by the callback's reaction, counted below, within the bounded wait; its pacing on
      -- a simulated clock: spec/pipeline/14's "pace one budget through the dict")
      assert.is_truthy(wait_for(function() return #sent(emulator, "ForbidRTCStreams", "z-listed") >= 1 end,
        5 * process.slowdown()), "not forbidden again within 5 s of the callback")
      assert.equal(401, created("z-listed", "wrong", "1002").status)
      assert.equal(401, created("z-listed", nil, "1001").status) -- (its signature again: a replay)
      socket.sleep(0.3)
      -- one reaction, for the first callback alone, by the edge's own count (the emulator's log may hold
      -- its attempt twice: one a loaded machine held past the client's timeout is sent again)
      local reactions = 'streamctl_reactions_total{provider="zego",reaction="forbid_again",result="ok"} 1\n'
      local metrics = get(port, "/metrics").body
      assert.truthy(metrics:find(reactions, 1, true), reactions .. " not in:\n" .. metrics)
      -- The audit log: the callback, from ZEGO; the reaction's intent and outcome, naming the stream.
      local callback, intent, outcome
      for line in io.lines(audit_path) do
        local r = cjson.decode(line)
        if r.command == "callback stream_create" then callback = r end
        if r.command == "reaction forbid_again" then
          if r.record == "intent" then intent = r else outcome = r end
        end
      end
      assert.equal("zego callback from 127.0.0.1", callback.user)
      assert.same({ 1, { { stream = "z-listed", action = "ForbidRTCStreams" } } }, { intent.count, intent.streams })
      assert.same({ "ok", { { stream = "z-listed", action = "ForbidRTCStreams", outcome = "ok" } } },
        { outcome.outcome, outcome.streams })
      assert.is_nil(outcome.note)
      assert.equal(intent.run, outcome.run)
    end)
  end)

  it("a relay reported offline is looked up and restarted; a stop asked for and a wrong token are not", function()
    with_edge(callback_env, function(emulator, edge)
      local port = edge.ports[1]
      local ali = assert(require("streamctl.aliyun").new { endpoint = emulator.aliyun_url,
        access_key_id = ALI_KEY, access_key_secret = ALI_SECRET, rate_limits = false })
      local task = assert(ali:create_live_pull_to_push { region = "cn-shanghai", source_type = "live",
        source_protocol = "rtmp", source_urls = { "rtmp://source.example.com/live/in" }, dst_url = "rtmp://push.example.com/live/out",
        start_time = os.time() - 10, end_time = os.time() + 3600 })
      assert(ali:stop_live_pull_to_push { region = "cn-shanghai", task_id = task.TaskId })
      local function status(reason, token, at)
        return post(port, "/callbacks/relay/" .. (token or CB_TOKEN), cjson.encode {
          Event = "LivePullToPushRuning", EventTime = tostring(at or os.time()), TaskId = task.TaskId, TaskStatus = 3,
          TaskInvalidReason = reason })
      end
      local t = edge_helper.fresh_ts(1)
      assert.equal(404, status("PullStreamFailed", "not-the-token").status)
      assert.equal(200, status("TriggerByUser", nil, t - 1).status)
      -- stale, or the same (task, time, status) again: refused, nothing done
      assert.equal(401, status("PullStreamFailed", nil, t - 700).status)
      assert.equal(401, status("PullStreamFailed", nil, t - 1).status)
      socket.sleep(0.3)
      assert.equal(0, #emulator:log { action = "RestartLivePullToPush", limit = 10 })
      assert.equal(0, #emulator:log { action = "DescribeLivePullToPush", limit = 10 })
      assert.equal(200, status("PullStreamFailed", nil, t).status)
      assert.is_truthy(wait_for(function() return #emulator:log { action = "RestartLivePullToPush", limit = 10 } == 1 end, 5))
      local looked = emulator:log { action = "DescribeLivePullToPush", limit = 10 }
      assert.equal(1, #looked)
      local d = assert(ali:describe_live_pull_to_push { region = "cn-shanghai", task_id = task.TaskId })
      assert.equal(1, d.TaskStatus)
      ali:close()
    end)
  end)
end)

describe("the OpenResty example and the emulator's own callbacks", function()
  -- The edge's port is chosen first: the emulator's config names its callback URLs.
  local NOTIFY_KEY, ZEGO_CB_SECRET, CB_TOKEN = "NotifyKey0123456789", "zego-callback-secret", "relay-token-abc123"
  local emulator, edge, port
  lazy_setup(function()
    port = emu.free_ports(1)[1]
    local base = "http://127.0.0.1:" .. port
    emulator = emu.start { config = {
      aliyun = { notify = { ["push.example.com"] = { url = base .. "/callbacks/aliyun", auth_key = NOTIFY_KEY } } },
      zego = { apps = { [ZEGO_APP] = { secret = ZEGO_SECRET, callback_url = base .. "/callbacks/zego",
                                       callback_secret = ZEGO_CB_SECRET } } },
    } }
    edge = start_edge(emulator, { ports = { port }, env = {
      STREAMCTL_ALIYUN_NOTIFY_KEY = NOTIFY_KEY, STREAMCTL_ALIYUN_NOTIFY_DOMAIN = "push.example.com",
      ZEGO_CALLBACK_SECRET = ZEGO_CB_SECRET, STREAMCTL_EDGE_CALLBACK_TOKEN = CB_TOKEN,
      STREAMCTL_EDGE_TASK_REGION = "cn-shanghai", STREAMCTL_EDGE_RECONCILE_S = "3600" } })
  end)
  lazy_teardown(function()
    if edge then edge:stop() end
    if emulator then emulator:stop() end
  end)
  before_each(function() emulator:reset() end)

  local function first(action, pred)
    for _, e in ipairs(emulator:log { action = action, limit = 1000 }) do
      if not pred or pred(e) then return e end
    end
  end
  local function ali_client()
    return assert(require("streamctl.aliyun").new { endpoint = emulator.aliyun_url, rate_limits = false,
      access_key_id = ALI_KEY, access_key_secret = ALI_SECRET })
  end

  it("Aliyun: a listed stream that starts publishing is forbidden again on the emulator's callback, by its "
    .. "reaction", function()
    local res = post(port, "/streams/aliyun/forbid",
      '{"domain_name":"push.example.com","app_name":"live","stream_name":"cam-1"}', TOKEN)
    assert.equal(200, res.status, res.body)
    -- lifted behind the edge's back, then the publisher comes back
    local ali = ali_client()
    assert(ali:resume_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "cam-1" })
    ali:close()
    -- (the emulator's clock a window ahead: its callback's window begins now, after the edge started; one
    -- whose window began before is refused, 503, issue 87. Both providers take a skew of 300 s.)
    emulator:clock { offset = require("streamctl.edge.callbacks").WINDOW_S }
    local marked = emulator:control("POST", "online", { domain = "push.example.com", app = "live", stream = "cam-1" })
    assert.equal(1, #marked.marked)
    local again = wait_for(function()
      return first("ForbidLiveStream", function(e) return e.params.StreamName == "cam-1" and e.time > 0 end) and
        #emulator:log { action = "ForbidLiveStream", limit = 10 } >= 2 and
        emulator:log({ action = "ForbidLiveStream", limit = 10 })[2]
    end, 5 * process.slowdown())
    assert.truthy(again, "not forbidden again within 5 s")
    local cb = first("callback:publish")
    assert.equal(200, cb.status)
    assert.equal(1, cb.attempt)
    -- (after the callback, within the bounded wait: its reaction's, the reconcile timer's next round an
    -- hour away. That the reaction's forbid waits for no slot is the pacing's, on a simulated clock:
    -- spec/pipeline/14's "pace one budget through the dict", spec/engine/06's "gives callers arriving
    -- slower than the rate no delay")
    local delay = again.real_time - cb.real_time
    assert.is_true(delay >= 0, "forbidden again " .. -delay .. " s before the callback")
    if os.getenv("SPEC_FIGURES") then io.stderr:write(string.format("[31] callback to forbid: %.3f s\n", delay)) end
    assert.equal("forbidden", emulator:state().aliyun.streams["push.example.com/live/cam-1"].status)
    -- a stream that is not listed publishes: its callback is answered, nothing is sent
    emulator:control("POST", "online", { domain = "push.example.com", app = "live", stream = "free-1" })
    assert.truthy(wait_for(function() return first("callback:publish", function(e) return e.stream and
      e.stream:find("free%-1") end) end, 5))
    socket.sleep(0.3)
    -- (nothing for it: every forbid logged is cam-1's, the first and the one again, and any attempt of
    -- theirs a loaded machine held past the client's timeout and sent again)
    for _, e in ipairs(emulator:log { action = "ForbidLiveStream", limit = 10 }) do
      assert.equal("cam-1", e.params.StreamName)
    end
  end)

  it("ZEGO: a listed stream created again is forbidden again on the emulator's callback, by its reaction",
    function()
    assert.equal(200, post(port, "/streams/zego/forbid", '{"stream_id":"zcam-1"}', TOKEN).status)
    -- lifted behind the edge's back (the edge's own client resumes it in the emulator's state)
    local z = assert(require("streamctl.zego").new { endpoint = emulator.zego_url, rate_limits = false,
      app_id = ZEGO_APP, server_secret = ZEGO_SECRET })
    assert(z:resume_rtc_streams { stream_ids = { "zcam-1" } })
    z:close()
    emulator:clock { offset = require("streamctl.edge.callbacks").WINDOW_S } -- (as the Aliyun row above)
    local published = emulator:control("POST", "zego_online", { app_id = ZEGO_APP, stream_id = "zcam-1",
      room_id = "room-1", user_id = "u1" })
    assert.same({}, published.refused or {})
    local again = wait_for(function()
      local list = emulator:log { action = "ForbidRTCStreams", limit = 10 }
      return #list >= 2 and list[2]
    end, 5 * process.slowdown())
    assert.truthy(again, "not forbidden again within 5 s")
    local cb = first("callback:stream_create")
    assert.equal(200, cb.status)
    assert.equal(1, cb.attempt)
    -- (after the callback, within the bounded wait: its reaction's; the pacing as the row above says)
    assert.is_true(again.real_time >= cb.real_time, "forbidden again before the callback")
  end)

  it("a relay whose source fails and goes offline is restarted by the edge and runs again", function()
    local ali = ali_client()
    local now = os.time()
    local task = assert(ali:create_live_pull_to_push { region = "cn-shanghai", source_type = "live",
      source_protocol = "rtmp", source_urls = { "rtmp://source.example.com/live/in" },
      dst_url = "rtmp://push.example.com/live/relay", start_time = now - 10, end_time = now + 86400,
      callback_url = "http://127.0.0.1:" .. port .. "/callbacks/relay/" .. CB_TOKEN })
    -- the service retries RetryCount (3) times RetryInterval (60 s) apart, on its clock, and each
    -- callback's EventTime is the instant it tells of. The source fails with the emulator's clock 120 s
    -- ahead of the edge's, and the clock then moves to 300 s ahead: the Offline callback's EventTime is
    -- the failure's instant + 180 s, inside the edge's 300 s window, and its window began after the
    -- edge started (one that began before is refused, 503: issue 87).
    local window = require("streamctl.edge.callbacks").WINDOW_S
    emulator:clock { offset = window - 180 }
    emulator:faults { kind = "source_down", task_id = task.TaskId }
    assert.truthy(wait_for(function()
      return first("callback:LivePullToPushRuning", function(e) return tonumber(e.task_status) == 2 end)
    end, 5), "no Recovering callback")
    local offline = wait_for(function()
      emulator:clock { offset = window }
      socket.sleep(0.5)
      return first("callback:LivePullToPushRuning", function(e) return tonumber(e.task_status) == 3 end)
    end, 10)
    assert.truthy(offline, "no Offline callback")
    assert.equal(200, offline.status)
    emulator:clear_faults() -- (the source is back)
    local restart = wait_for(function() return first("RestartLivePullToPush") end, 5)
    assert.truthy(restart, "not restarted")
    -- back well within the service's own retry (RetryInterval, 60 s by default). (In a fresh dict the first
    -- use of each action's budget waits out a second that may have held a full cap: 1.05 s for the look-up
    -- and 1.05 s for the restart here, the first time.)
    local delay = restart.real_time - offline.real_time
    assert.is_true(delay < 60, "restarted " .. delay .. " s after the Offline callback")
    if os.getenv("SPEC_FIGURES") then io.stderr:write(string.format("[31] offline to restart: %.3f s\n", delay)) end
    assert.equal(1, #emulator:log { action = "DescribeLivePullToPush", limit = 10 })
    local running = wait_for(function()
      local d = ali:describe_live_pull_to_push { region = "cn-shanghai", task_id = task.TaskId }
      return d and d.TaskStatus == 1
    end, 5)
    assert.truthy(running, "the relay is not running again")
    assert.equal(1, #emulator:log { action = "RestartLivePullToPush", limit = 10 })
    ali:close()
  end)
end)

-------------------------------------------------------------------------------
-- The driver: streamctl used the ways the example does not show alone.

local DRIVER = [==[
local streamctl = require "streamctl"
local auto = require "streamctl.transport.auto"
local cjson = require "cjson.safe"

local getenv = os.getenv
local M = { phases = {} }

local function now() ngx.update_time() return ngx.now() end

local function reply(value)
  ngx.header.content_type = "application/json"
  ngx.print(cjson.encode(value))
end

local function aliyun(extra)
  local o = { endpoint = getenv("ALIYUN"), ca_file = getenv("CA"), access_key_id = "LTAIemulatorKey",
              access_key_secret = "emulator-secret", shared_dict = "streamctl" }
  for k, v in pairs(extra or {}) do o[k] = v end
  if o.shared_dict == "" then o.shared_dict = nil end -- this client keeps its own state
  return assert(streamctl.aliyun.new(o))
end

-- init_by_lua: one client, used here (libcurl: blocking is harmless in the
-- master) and later in the workers' phases (cosockets, or a refusal).
function M.init()
  M.ali = aliyun()
  local res, err = M.ali:describe_live_streams_block_list { domain_name = "init.example" }
  M.phases.init = { ok = res ~= nil, err = err and tostring(err), here = auto.here() }
end

local results = ngx.shared.results

-- Two timers at once, each a forbid the emulator holds for 500 ms.
local function timer_call(premature, i)
  if premature then return end
  local t0 = now()
  local res, err = M.ali:forbid_live_stream { domain_name = "t.example", app_name = "live", stream_name = "timer-" .. i }
  results:set("timer:" .. i, cjson.encode { ok = res ~= nil, err = err and tostring(err), here = auto.here(),
                                            t0 = t0, t1 = now() })
end

-- The jobs POST /job hands every worker.
local jobs = {}
local zego_client

function jobs.budget(job)
  local names = {}
  for i = 1, job.n do names[i] = "w" .. ngx.worker.id() .. "-" .. i end
  local report = assert(M.ali:resume_live_streams { domain_name = "b.example", app_name = "live",
                                                     stream_names = names })
  local attempts = 0
  for _, r in ipairs(report.results) do attempts = attempts + r.attempts end
  return { succeeded = report.succeeded, total = report.total, attempts = attempts }
end

function jobs.sequences(job)
  zego_client = zego_client or assert(streamctl.zego.new { endpoint = getenv("ZEGO"), ca_file = getenv("CA"),
    app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef", shared_dict = "streamctl" })
  local ok = 0
  for _ = 1, job.n do
    if zego_client:resume_rtc_stream { stream_id = job.stream } then ok = ok + 1 end
  end
  return { succeeded = ok, total = job.n }
end

local last_job = 0
local function run_job(premature, job)
  if premature then return end
  local ok, out = pcall(jobs[job.kind], job)
  if not ok then out = { error = tostring(out) } end
  out.worker = ngx.worker.id()
  results:set("job:" .. job.id .. ":" .. ngx.worker.id(), cjson.encode(out))
end

local function poll_jobs(premature)
  if premature then return end
  local job = cjson.decode(results:get("job") or "null")
  if job and job.id > last_job then
    last_job = job.id
    ngx.timer.at(0, run_job, job)
  end
end

function M.init_worker()
  local res, err = M.ali:resume_live_stream { domain_name = "w.example", app_name = "live", stream_name = "iw" }
  M.phases.init_worker = { ok = res ~= nil, code = err and err.code, message = err and err.message }
  if getenv("TIMERS") and ngx.worker.id() == 0 then
    for i = 1, 2 do ngx.timer.at(0, timer_call, i) end
  end
  ngx.timer.every(0.05, poll_jobs)
end

function M.phases_json()
  local timers = {}
  for i = 1, 2 do timers[i] = cjson.decode(results:get("timer:" .. i) or "null") end
  reply { init = M.phases.init, init_worker = M.phases.init_worker, timers = timers }
end

-- GET /resume?stream=S: one resume, unpaced, by the account the emulator does not limit.
local fast
function M.resume()
  fast = fast or aliyun { access_key_id = "LTAIfast", access_key_secret = "fast-secret", rate_limits = false,
                          shared_dict = "" }
  local t0 = now()
  local res, err = fast:resume_live_stream { domain_name = "f.example", app_name = "live", stream_name = ngx.var.arg_stream }
  reply { ok = res ~= nil, err = err and tostring(err), elapsed = now() - t0 }
end

function M.job()
  ngx.req.read_body()
  results:set("job", ngx.req.get_body_data())
  reply { ok = true }
end

function M.results()
  local out = {}
  for w = 0, tonumber(ngx.var.arg_workers) - 1 do
    out[#out + 1] = cjson.decode(results:get("job:" .. ngx.var.arg_id .. ":" .. w) or "null")
  end
  reply(out)
end

return M
]==]

local function start_driver(emulator, workers, env)
  local e = { ALIYUN = emulator.aliyun_tls_url, ZEGO = emulator.zego_tls_url, CA = emulator.ca_file }
  for k, v in pairs(env or {}) do e[k] = v end
  return nginx.start {
    workers = workers,
    env = e,
    prepare = function(dir) nginx.write_file(dir .. "/driver.lua", DRIVER) end,
    lua_path = function(dir) return dir .. "/?.lua" end,
    lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
    main = "env ALIYUN; env ZEGO; env CA; env TIMERS;",
    http = function(ports)
      return table.concat({
        "lua_shared_dict streamctl 1m;",
        "lua_shared_dict results 1m;",
        "lua_ssl_trusted_certificate " .. nginx.conf_quoted(emulator.ca_file) .. ";",
        "lua_ssl_verify_depth 2;",
        "init_by_lua_block { require('driver').init() }",
        "init_worker_by_lua_block { require('driver').init_worker() }",
        "server {",
        "  listen 127.0.0.1:" .. ports[1] .. ";",
        "  location = /phases { content_by_lua_block { require('driver').phases_json() } }",
        "  location = /resume { content_by_lua_block { require('driver').resume() } }",
        "  location = /job { content_by_lua_block { require('driver').job() } }",
        "  location = /results { content_by_lua_block { require('driver').results() } }",
        "}",
      }, "\n    ")
    end,
  }
end

local EMULATOR_CONFIG = { aliyun = { accounts = { LTAIfast = { secret = "fast-secret", qps = { ResumeLiveStream = 0 } } } } }

describe("streamctl in one nginx worker", function()
  local emulator, driver
  lazy_setup(function()
    emulator = emu.start { config = EMULATOR_CONFIG }
    emulator:faults { kind = "delay", action = "ForbidLiveStream", delay_ms = 500, count = 2 }
    driver = start_driver(emulator, 1, { TIMERS = "1" })
  end)
  lazy_teardown(function()
    if driver then driver:stop() end
    if emulator then emulator:stop() end
  end)

  it("uses libcurl in init_by_lua, refuses init_worker naming ngx.timer.at, and uses cosockets in timers", function()
    local phases
    local deadline = socket.gettime() + 15
    repeat
      phases = decode(get(driver.ports[1], "/phases"))
      local done = phases.timers[1] ~= cjson.null and phases.timers[2] ~= cjson.null
      if not done then socket.sleep(0.1) end
    until done or socket.gettime() > deadline
    assert.same({ ok = true, here = "curl" }, phases.init)
    assert.same({ ok = false, code = "InvalidRequest", message = "streamctl cannot send from nginx's 'init_worker' "
      .. "phase: it has no cosockets and must not block; send from ngx.timer.at(0, function() ... end) instead "
      .. "(or from a rewrite, access or content handler)" }, phases.init_worker)
    local t1, t2 = phases.timers[1], phases.timers[2]
    assert.same({ true, "ngx", true, "ngx" }, { t1.ok, t1.here, t2.ok, t2.here })
    -- Each was held 500 ms (not less), side by side: both were held at the
    -- emulator at once (libcurl would block the worker, and the second
    -- would be sent once the first was answered). Who was held with whom is
    -- the emulator's log: a verdict, however slow the machine. (Both first
    -- wait out the fresh shared dict's LOSS_PAUSE: nginx just started.)
    assert.is_true(t1.t1 - t1.t0 >= 0.5 and t2.t1 - t2.t0 >= 0.5)
    local held = emulator:log({ action = "ForbidLiveStream" })
    assert.equal(2, #held)
    assert.equal(1, #alone(held), "the two timers' forbids were not held at the emulator at once")
    assert.equal(0, #emulator:log({ action = "ResumeLiveStream" })) -- init_worker sent nothing
  end)

  -- (How soon 50 held requests all end is the machine's figure; what holds anywhere is that the worker
  -- never waits for one to end before it sends the next: the emulator holds many at once.)
  it("serves 50 concurrent requests while the provider holds each for 500 ms, many held at once", function()
    emulator:faults { kind = "delay", action = "ResumeLiveStream", delay_ms = 500, count = 50 }
    local requests = {}
    for i = 1, 50 do requests[i] = raw_request("GET", "/resume?stream=s" .. i) end
    local t0 = socket.gettime()
    local answers = concurrently(driver.ports[1], requests, 60)
    local wall = socket.gettime() - t0
    for i, res in ipairs(answers) do
      assert.equal(200, res.status, "request " .. i .. ": " .. tostring(res.body or res.raw))
      local v = decode(res)
      assert.is_true(v.ok, v.err)
      assert.is_true(v.elapsed >= 0.5)
    end
    local log = emulator:log({ action = "ResumeLiveStream" })
    assert.equal(50, #log)
    -- Blocking, one worker would hold one at a time (50 x 0.5 = 25 s), each sent once the one before
    -- was answered: here every one but the first reached the emulator while an earlier one was still
    -- held there (the emulator's log says who was held with whom: a verdict, however slow the machine).
    local lone = #alone(log)
    assert.equal(1, lone, lone .. " of the 50 reached the emulator when no earlier one was held there (50 took "
      .. wall .. " s)")
    if os.getenv("SPEC_FIGURES") then io.stderr:write(string.format("[31] 50 held requests: %.2f s\n", wall)) end
  end)
end)

describe("streamctl in four nginx workers sharing a lua_shared_dict", function()
  local emulator, driver, job_id = nil, nil, 0
  lazy_setup(function()
    -- (the strictest count: an arrival exactly a second old still in the window; issue 87)
    emulator = emu.start { config = { aliyun = { rate_limiter = "sliding_window_closed" },
                                      zego = { rate_limiter = "sliding_window_closed" } } }
    driver = start_driver(emulator, 4)
  end)
  lazy_teardown(function()
    if driver then driver:stop() end
    if emulator then emulator:stop() end
  end)

  -- Hands every worker `job` and waits (at most 60 s) for the four results.
  local function run(job)
    job_id = job_id + 1
    job.id = job_id
    assert.equal(200, post(driver.ports[1], "/job", cjson.encode(job)).status)
    local out
    local deadline = socket.gettime() + 60
    repeat
      socket.sleep(0.2)
      out = decode(get(driver.ports[1], "/results?workers=4&id=" .. job_id))
      local n = 0
      for _, r in pairs(out) do if r ~= cjson.null then n = n + 1 end end
    until n == 4 or socket.gettime() > deadline
    for w = 1, 4 do
      assert.is_table(out[w], "worker " .. (w - 1) .. " did not finish within 60 s")
      assert.is_nil(out[w].error, out[w].error)
    end
    return out
  end

  it("keeps every worker together under the cap: every call done, zero throttled", function()
    emulator:reset()
    local out = run { kind = "budget", n = 40 }
    for w = 1, 4 do
      assert.same({ 40, 40 }, { out[w].total, out[w].succeeded })
      -- (an attempt a busy machine kept past its timeout is tried again: more attempts than calls then,
      -- never fewer; a throttle would show in the emulator's counters below)
      assert.is_true(out[w].attempts >= 40, "worker " .. w .. ": " .. tostring(out[w].attempts) .. " attempts")
    end
    local counters = emulator:state().aliyun.counters.ResumeLiveStream
    assert.same({ 160, 0 }, { counters.accepted, counters.throttled })
    assert.equal(160, #emulator:log({ action = "ResumeLiveStream", limit = 1000 }))
    -- (that together they keep under the cap, in every second, is asserted on a simulated clock, where a
    -- busy machine can neither stretch nor bunch the arrivals: spec/engine/15-shared-budget's "four
    -- workers, 40 calls each" row; here the verdicts: every call done, none throttled, none lost)
  end)

  -- (Which of two workers' calls on one stream reaches ZEGO first is the machine's to decide, not
  -- streamctl's: on a busy one the call with the lower Sequence can arrive second, and ZEGO then skips it as
  -- superseded, the state being the higher one's either way. What the shared dict promises, and what is
  -- checked, is the Sequences it hands out: one per call, all distinct, whichever worker takes them.)
  it("hands out strictly increasing Sequences for one stream, whichever worker sends", function()
    emulator:reset()
    local out = run { kind = "sequences", n = 10, stream = "shared" }
    for w = 1, 4 do assert.same({ 10, 10 }, { out[w].total, out[w].succeeded }) end
    local log = emulator:log({ action = "ResumeRTCStream", limit = 1000 })
    local verdicts, calls, stale = {}, {}, 0
    for i, e in ipairs(log) do
      assert.equal("shared", e.params.StreamId)
      verdicts[i] = e.verdict .. " " .. e.sequence
      calls[e.sequence] = true
      if e.verdict == "stale" then stale = stale + 1 end
    end
    local what = table.concat(verdicts, ", ")
    -- (none refused. A throttle is the machine's here too: a worker stalled past the margin between its
    -- slot and the emulator, which shares the loaded machine, puts 21 arrivals in one second a second
    -- later, as a loaded make test saw under ASan; what holds is that the call was sent again with its
    -- Sequence and answered: ok, or stale behind the calls decided after it)
    local answered, throttled = {}, 0
    for _, e in ipairs(log) do
      assert.is_true(e.verdict == "ok" or e.verdict == "stale" or e.verdict == "throttled", what)
      if e.verdict == "throttled" then throttled = throttled + 1 else answered[e.sequence] = true end
    end
    for _, e in ipairs(log) do
      if e.verdict == "throttled" then assert.is_true(answered[e.sequence], what) end
    end
    local distinct = 0
    for _ in pairs(calls) do distinct = distinct + 1 end
    assert.equal(40, distinct, what) -- (a call sent again keeps its Sequence: never two calls on one)
    local highest = 0
    for sequence in pairs(calls) do highest = math.max(highest, tonumber(sequence)) end
    local state = emulator:state().zego.streams[ZEGO_APP].shared
    assert.equal(highest, tonumber(state.last_sequence), what) -- (the highest one applied: the state is its)
    if os.getenv("SPEC_FIGURES") then
      io.stderr:write("[31] stale arrivals across workers: " .. stale .. ", throttled: " .. throttled .. "\n")
    end
  end)
end)
