-- sanitizers: none (what it tests runs in nginx, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- load: heavy (an edge, the emulator and a forbid waiting out its 7 s window)
-- Issue 87, at the edge: the forbid list follows the decision made last. A
-- stranger holds the forbid's action (every attempt throttled); once its
-- first attempt was throttled, a resume of the same stream goes through the
-- same edge and lands. While the forbid waits, the door refuses the stream
-- already (a ban counts from when it is decided; before, it admitted the
-- stream and issued it tokens until the provider applied the ban). Past
-- its window the forbid is superseded, not sent;
-- its answer says so (`superseded_by`), and the stream does not land on
-- the list: the door admits it and the reconciler has nothing to forbid
-- again. Before, the list took every stream of a finished request, and the
-- next reconcile round forbade it again: the later resume undone.
-- Verdicts only: no rate or latency is asserted.
local cjson = require "cjson"
local nginx = require "spec.helpers.nginx"
local emu = require "spec.helpers.emulator"
local edge_helper = require "spec.helpers.edge"
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"

local TOKEN = edge_helper.TOKEN
local post, get = edge_helper.post, edge_helper.get
local q = process.quote

local available, why_not = nginx.available()
assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

local PROVIDERS = {
  aliyun = {
    action = "ForbidLiveStream", budget = { account = "LTAIemulatorKey" },
    body = function(stream) return cjson.encode { domain_name = "push.example.com", app_name = "live",
      stream_name = stream } end,
    -- the door's answer for the stream: 200 admitted, 403 refused
    door = function(port, stream)
      return get(port, "/admission/aliyun?domain=push.example.com&app=live&stream=" .. stream).status
    end,
    state = function(server, stream)
      local s = server:state().aliyun.streams["push.example.com/live/" .. stream]
      return s and s.status
    end,
  },
  zego = {
    action = "ForbidRTCStreams", budget = { app_id = 1234567890 },
    body = function(stream) return cjson.encode { stream_id = stream } end,
    door = function(port, stream)
      return post(port, "/tokens/zego", cjson.encode { user_id = "u1", room_id = "r1", login = true, publish = true,
        stream_ids = { stream } }, edge_helper.ISSUER_TOKEN).status
    end,
    state = function(server, stream)
      local s = server:state().zego.streams["1234567890"][stream]
      return s and s.rtc
    end,
  },
}

-- An emulator, a Redis and an edge on them for the describe it is called in (`opts`: start_edge's
-- beyond STREAMCTL_REDIS_URL, and an hour between reconcile rounds), stopped after: `t.emulator`,
-- `t.redis`, `t.edge`.
local function redis_edge(opts)
  local redis_helper = require "spec.helpers.redis"
  local t = {}
  lazy_setup(function()
    t.emulator = emu.start {}
    t.redis = redis_helper.start {}
    local o = { workers = opts and opts.workers, env = { STREAMCTL_REDIS_URL = t.redis.url,
                                                       STREAMCTL_EDGE_RECONCILE_S = "3600" } }
    for k, v in pairs(opts and opts.env or {}) do o.env[k] = v end
    t.edge = edge_helper.start_edge(t.emulator, o)
  end)
  lazy_teardown(function()
    for _, s in ipairs { t.edge, t.redis, t.emulator } do if s then s:stop() end end
  end)
  return t
end

describe("the edge's forbid list follows the decision made last", function()
  local emulator, edge, dir
  lazy_setup(function()
    emulator = emu.start {}
    dir = process.temp_dir()
    edge = edge_helper.start_edge(emulator, { env = { STREAMCTL_EDGE_RECONCILE_S = "3600",
                                                      STREAMCTL_EDGE_AUDIT_LOG = dir .. "/audit.jsonl" } })
  end)
  lazy_teardown(function()
    if edge then edge:stop() end
    if emulator then emulator:stop() end
    if dir then process.run("rm -rf " .. q(dir)) end
  end)

  for _, name in ipairs { "aliyun", "zego" } do
    local p = PROVIDERS[name]
    it(name .. ": a throttled forbid superseded by a later resume never lands on the list", function()
      local stream = name .. "-late-forbid"
      local stranger = { action = p.action, rate = 1000 }
      for k, v in pairs(p.budget) do stranger[k] = v end
      emulator:control("POST", "strangers", stranger, name)
      finally(function() emulator:control("DELETE", "strangers", nil, name) end)
      local before = (emulator:state()[name].counters[p.action] or {}).throttled or 0
      -- the forbid, in a process of its own (it waits out its window)
      local out = dir .. "/" .. name .. ".out"
      local child = process.spawn("sh -c " .. q("curl -s -H " .. q("Authorization: Bearer " .. TOKEN) .. " -d "
        .. q(p.body(stream)) .. " -w '\\n%{http_code}' http://127.0.0.1:" .. edge.ports[1] .. "/streams/" .. name
        .. "/forbid >" .. q(out) .. "; echo done >" .. q(out .. ".rc")))
      finally(function() process.stop(child) end)
      assert(checks.wait_until(function()
        local c = emulator:state()[name].counters[p.action]
        return c and (c.throttled or 0) > before
      end, 60), "the forbid's first attempt never reached the emulator")
      -- the ban counts from when it was decided: the door refuses the stream while the forbid waits
      assert.equal(403, p.door(edge.ports[1], stream), "the door admits a stream whose forbid is under way")
      -- the later decision, through the same edge: it lands
      local res = post(edge.ports[1], "/streams/" .. name .. "/resume", p.body(stream), TOKEN)
      assert.equal(200, res.status, res.body)
      assert(checks.wait_until(function() return process.read_file(out .. ".rc") end, 120), "the forbid never ended")
      local body, status = process.read_file(out):match("^(.*)\n(%d+)$")
      assert.equal("200", status, body)
      -- the stream stands as the resume left it: normal at the provider, admitted at the door
      assert.not_equal("forbidden", p.state(emulator, stream))
      assert.equal(200, p.door(edge.ports[1], stream), "the door refuses it: the stream is on the list")
      -- and the forbid's answer says why it did not apply
      local report = cjson.decode(body)
      assert.same({ 1, 0, 0 }, { report.succeeded, report.failed, report.unknown })
      assert.is_string(report.results[1].superseded_by, body)
      -- and so does its audit line
      local entry
      for l in process.read_file(dir .. "/audit.jsonl"):gmatch("[^\n]+") do
        local rec = cjson.decode(l)
        if rec.record == "outcome" and rec.streams and rec.streams[1].stream == stream
            and rec.streams[1].action == p.action then
          entry = rec.streams[1]
        end
      end
      assert.same({ "ok", report.results[1].superseded_by }, { entry and entry.outcome, entry and entry.superseded_by })
    end)
  end
end)

-- Issue 87: a forbid list that may have forgotten is never read as "nobody is forbidden". Redis
-- restarts without its data under a running edge: the door refuses (ListUnavailable, as its
-- on_list_error "deny" says) until the list is whole again; worker 0's next round loads the seed
-- again, and the door answers from it. Before, the list read as empty: 200 Admitted for a stream the
-- seed forbids, and the seed was never loaded again.
describe("the edge's forbid list after Redis restarted without its data", function()
  local redis_helper = require "spec.helpers.redis"
  local emulator, redis, edge, dir
  lazy_setup(function()
    emulator = emu.start {}
    redis = redis_helper.start {}
    dir = process.temp_dir()
    nginx.write_file(dir .. "/forbids.json", '{"aliyun":[{"domain_name":"push.example.com","app_name":"live",'
      .. '"stream_names":["seeded-1"]}]}')
    edge = edge_helper.start_edge(emulator, { workers = 2, env = { STREAMCTL_REDIS_URL = redis.url,
      STREAMCTL_EDGE_FORBIDS = dir .. "/forbids.json", STREAMCTL_EDGE_RECONCILE_S = "3600",
      STREAMCTL_EDGE_LIST_GRACE_S = "0" } })
  end)
  lazy_teardown(function()
    for _, s in ipairs { edge, redis, emulator } do if s then s:stop() end end
    if dir then process.run("rm -rf " .. q(dir)) end
  end)

  local function door(stream)
    local res = get(edge.ports[1], "/admission/aliyun?domain=push.example.com&app=live&stream=" .. stream)
    return res.status, (cjson.decode(res.body) or {}).code
  end

  it("refuses at the door until the seed is loaded again, then answers from it", function()
    -- the seed, loaded by worker 0's first round
    assert(checks.wait_until(function() return select(2, door("seeded-1")) == "Forbidden" end, 30),
      "the seed was never loaded")
    assert.same({ 200 }, { (door("free-1")) })
    -- (the seed cannot be read while Redis restarts: the list stays unmade; no grace here)
    assert(os.rename(dir .. "/forbids.json", dir .. "/forbids.away"))
    redis:restart()
    -- (the first asks after the restart may meet the connection Redis dropped: bounded)
    local status, code
    assert(checks.wait_until(function()
      status, code = door("free-1")
      return code == "ListUnavailable"
    end, 30), "the door answered " .. tostring(status) .. " " .. tostring(code) .. " for a list that forgot")
    assert.same({ 403, "ListUnavailable" }, { door("seeded-1") })
    assert(checks.wait_until(function()
      return edge:error_log():find("STREAMCTL_EDGE_FORBIDS: " .. dir .. "/forbids.json", 1, true) ~= nil
    end, 30), "the seed that cannot be read was not said: " .. edge:error_log())
    assert.same({ 403, "ListUnavailable" }, { door("free-1") })
    -- the seed back: worker 0 loads it within a tick (5 s), with no round due and no reload
    assert(os.rename(dir .. "/forbids.away", dir .. "/forbids.json"))
    assert(checks.wait_until(function() return select(2, door("seeded-1")) == "Forbidden" end, 30),
      "the seed was not loaded again")
    assert.same({ 200 }, { (door("free-1")) })
    assert.truthy(edge:error_log():find("loaded again from STREAMCTL_EDGE_FORBIDS", 1, true), edge:error_log())
  end)
end)

-- Issue 87: with no seed and STREAMCTL_EDGE_ADOPT=aliyun, a list that forgot is made whole from what the
-- providers can tell: Alibaba Cloud's block lists (every domain of the account) are adopted, so a stream
-- banned there is refused at the door again; ZEGO's API cannot list its bans, so its part is taken as it
-- stands, said.
describe("the edge's forbid list after Redis restarted, with no seed", function()
  local t = redis_edge { env = { STREAMCTL_EDGE_ADOPT = "aliyun" } }

  -- the door's code for an Alibaba Cloud stream ("Admitted", "Forbidden", "ListUnavailable")
  local function code(stream)
    local res = get(t.edge.ports[1], "/admission/aliyun?domain=push.example.com&app=live&stream=" .. stream)
    return (cjson.decode(res.body) or {}).code
  end

  it("adopts Alibaba Cloud's block lists; ZEGO's part as it stands, said", function()
    local aliyun, zego = PROVIDERS.aliyun, PROVIDERS.zego
    -- (the list made whole at worker 0's first round: as it stood, empty)
    assert(checks.wait_until(function() return aliyun.door(t.edge.ports[1], "free-1") == 200 end, 30),
      "the list was never made whole")
    for _, name in ipairs { "aliyun", "zego" } do
      local res = post(t.edge.ports[1], "/streams/" .. name .. "/forbid", PROVIDERS[name].body("banned-1"), TOKEN)
      assert.equal(200, res.status, res.body)
    end
    assert.same({ 403, 403 }, { aliyun.door(t.edge.ports[1], "banned-1"), zego.door(t.edge.ports[1], "banned-1") })
    t.redis:restart()
    -- (worker 0 makes the list whole within a tick; meanwhile the door answers from the list last read whole)
    assert(checks.wait_until(function()
      return t.edge:error_log():find("Alibaba Cloud's block lists adopted (1 streams", 1, true) ~= nil
    end, 30), "the list was not made whole again: " .. t.edge:error_log())
    assert.equal("Admitted", code("free-1"))
    assert.equal("Forbidden", code("banned-1")) -- (adopted from the block list)
    assert.equal("forbidden", aliyun.state(t.emulator, "banned-1"))
    assert.equal(200, zego.door(t.edge.ports[1], "banned-1")) -- (ZEGO's ban stands, but cannot be read back)
    assert.truthy(t.edge:error_log():find("Alibaba Cloud's block lists adopted (1 streams, 1 domains); ZEGO's part "
      .. "taken as it stands", 1, true), t.edge:error_log())
  end)
end)

-- Issue 87: the replay store's memory never begins before its server's start, whoever asks. ZEGO
-- delivers a stream_create callback to the edge (Redis remembers it); the emulator delivers it again,
-- byte for byte (at least once: the strictest reading, POST /_emulator/callbacks), and the edge
-- refuses it as seen. Redis restarts without its data and the edge's workers are new (a reload: they
-- never saw the store): the same bytes once more are refused too (503, ReplayStoreUnavailable: the
-- window began before Redis' start), where before they were accepted.
describe("a ZEGO callback delivered again after Redis restarted, to new workers", function()
  local redis_helper = require "spec.helpers.redis"
  local CB_SECRET = "zego-callback-secret"
  local emulator, redis, edge, port
  lazy_setup(function()
    port = emu.free_ports(1)[1]
    emulator = emu.start { config = { zego = { apps = { [edge_helper.ZEGO_APP] = { secret = edge_helper.ZEGO_SECRET,
      callback_url = "http://127.0.0.1:" .. port .. "/callbacks/zego", callback_secret = CB_SECRET } } } } }
    redis = redis_helper.start {}
    edge = edge_helper.start_edge(emulator, { ports = { port }, env = { STREAMCTL_REDIS_URL = redis.url,
      ZEGO_CALLBACK_SECRET = CB_SECRET, STREAMCTL_EDGE_RECONCILE_S = "3600" } })
  end)
  lazy_teardown(function()
    for _, s in ipairs { edge, redis, emulator } do if s then s:stop() end end
  end)

  it("is refused as seen, and after the restart as what Redis cannot have seen", function()
    -- (the emulator's clock a window ahead: the callback's window begins after the edge started. And
    -- Redis up 2 s first: in its first second it cannot say it began before now, INFO's uptime being
    -- whole seconds, and the first delivery would be refused too)
    for _ = 1, 100 do
      if tonumber(redis:cli("INFO", "server"):match("uptime_in_seconds:(%d+)")) >= 2 then break end
      require("socket").sleep(0.05)
    end
    emulator:clock { offset = require("streamctl.edge.callbacks").WINDOW_S }
    emulator:control("POST", "zego_online", { app_id = edge_helper.ZEGO_APP, stream_id = "replayed-1",
      room_id = "room-1", user_id = "u1" })
    local cb
    assert(checks.wait_until(function()
      cb = emulator:log({ action = "callback:stream_create", limit = 10 })[1]
      return cb ~= nil
    end, 30), "no stream_create callback was delivered")
    assert.equal(200, cb.status)
    -- each time, the bytes sent again, and what the edge answered (the emulator's log entry)
    local function again()
      local before = #emulator:log { action = "callback:stream_create", limit = 100 }
      assert.equal(202, select(2, emulator:control("POST", "callbacks", { delivery = cb.delivery })))
      local entry
      assert(checks.wait_until(function()
        local list = emulator:log { action = "callback:stream_create", limit = 100 }
        entry = #list > before and list[#list]
        return entry
      end, 30), "the callback was not sent again")
      assert.is_true(entry.again)
      return entry.status
    end
    assert.equal(401, again()) -- (seen: a replay)
    redis:restart()
    edge:reload()
    -- (the first asks after the restart may meet the connection Redis dropped: bounded)
    local status
    for _ = 1, 20 do
      status = again()
      if status ~= 500 then break end
    end
    assert.equal(503, status)
    assert.truthy(edge:error_log():find("ReplayStoreUnavailable", 1, true), edge:error_log())
  end)
end)

-- Issue 88: an answer's status matches what happened. Redis refuses writes (NOREPLICAS) while a forbid
-- goes out: the call is sent (the budget and the decision fall back to this worker's own, said) and
-- lands, but the list cannot follow it: a 500 whose `error` says the calls were sent and the list did
-- not follow, with the results of what was sent. Before, the body said every stream succeeded under a
-- status the docs read as "nothing was sent".
describe("a forbid the list cannot follow", function()
  local t = redis_edge()

  it("answers 500 saying the calls were sent and the list did not follow", function()
    assert(checks.wait_until(function() return PROVIDERS.aliyun.door(t.edge.ports[1], "free-1") == 200 end, 30),
      "the list was never made whole")
    assert.equal("OK", t.redis:cli("CONFIG", "SET", "min-replicas-to-write", "1"))
    local res = post(t.edge.ports[1], "/streams/aliyun/forbid", PROVIDERS.aliyun.body("unfollowed-1"), TOKEN)
    t.redis:cli("CONFIG", "SET", "min-replicas-to-write", "0")
    assert.equal(500, res.status, res.body)
    local v = cjson.decode(res.body)
    assert.matches("^the calls were sent %(see results%), but the forbid list could not follow them: Redis at "
      .. "127%.0%.0%.1:%d+: .*NOREPLICAS", v.error)
    assert.same({ 1, 0, true }, { v.succeeded, v.failed, v.results[1].ok })
    assert.equal("forbidden", PROVIDERS.aliyun.state(t.emulator, "unfollowed-1"))
  end)
end)

-- Issue 88: one request bans on both providers, and a failover does not shut the door. Redis goes
-- away (a failover's seconds): the door answers from the list its worker last read whole for
-- STREAMCTL_EDGE_LIST_GRACE_S (a banned stream refused, another admitted, each reason saying so,
-- counted and said once in the log), then as STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR says. Before, every
-- publish on both providers was refused from the first second.
describe("a door whose Redis goes away", function()
  local t = redis_edge { workers = 1, env = { STREAMCTL_EDGE_LIST_GRACE_S = "4" } }

  -- a counter's value in /metrics (0 when absent)
  local function counter(series)
    local text = get(t.edge.ports[1], "/metrics").body or ""
    return tonumber(text:match("\n" .. series:gsub("%p", "%%%0") .. " (%d+)")) or 0
  end
  local function aliyun_door(stream)
    local res = get(t.edge.ports[1], "/admission/aliyun?domain=push.example.com&app=live&stream=" .. stream)
    local v = cjson.decode(res.body) or {}
    return res.status, v.code, v.reason
  end

  it("bans on both providers in one request, then answers from the list last read whole, then refuses", function()
    assert(checks.wait_until(function() return PROVIDERS.aliyun.door(t.edge.ports[1], "free-1") == 200 end, 30),
      "the list was never made whole")
    local res = post(t.edge.ports[1], "/streams/forbid", cjson.encode {
      aliyun = { domain_name = "push.example.com", app_name = "live", stream_names = { "banned-1" } },
      zego = { stream_ids = { "banned-1" } } }, TOKEN)
    assert.equal(200, res.status, res.body)
    local v = cjson.decode(res.body)
    assert.same({ "ForbidLiveStream", 1, "ForbidRTCStreams", 1 }, { v.aliyun.action, v.aliyun.succeeded,
      v.zego.action, v.zego.succeeded })
    assert.same({ "forbidden", "forbidden" }, { PROVIDERS.aliyun.state(t.emulator, "banned-1"),
      PROVIDERS.zego.state(t.emulator, "banned-1") })
    -- (the worker's copy read twice since: it holds the ban)
    local reads = counter('streamctl_list_reads_total{result="whole"}')
    assert(checks.wait_until(function() return counter('streamctl_list_reads_total{result="whole"}') >= reads + 2 end,
      30), "the list was not read whole again")
    t.redis:stop()
    local status, code, reason = aliyun_door("banned-1")
    assert.same({ 403, "Forbidden" }, { status, code })
    assert.matches("^aliyun stream push%.example%.com/live/banned%-1 is on the forbid list as read whole %d+%.%d s "
      .. "ago %(the forbid list cannot be read %(.+%); grace 4 s%)$", reason)
    status, code = aliyun_door("free-1")
    assert.same({ 200, "Admitted" }, { status, code })
    assert.equal(403, PROVIDERS.zego.door(t.edge.ports[1], "banned-1"))
    assert.truthy(t.edge:error_log():find("the door answers from the forbid list last read whole", 1, true))
    -- past the grace: refused, as STREAMCTL_EDGE_ADMIT_ON_LIST_ERROR (deny) says
    assert(checks.wait_until(function() return select(2, aliyun_door("free-1")) == "ListUnavailable" end, 30),
      "the door answered from the old list past its grace")
    status, code, reason = aliyun_door("free-1")
    assert.same({ 403, "ListUnavailable" }, { status, code })
    assert.truthy(reason:find("past the grace (4 s): refused, as on_list_error says", 1, true), reason)
    assert.truthy(counter('streamctl_stale_admissions_total{provider="aliyun",result="answered"}') >= 2)
    assert.truthy(counter('streamctl_stale_admissions_total{provider="aliyun",result="expired"}') >= 1)
    assert.truthy(t.edge:error_log():find("the door answers as admit_on_list_error says", 1, true))
  end)

  it("refuses a request for both whose part breaks a rule, naming it; sends nothing", function()
    for _, row in ipairs {
      { { zego = { stream_ids = { "ok-1" } }, bogus = {} }, 'field \'bogus\' is not a field of this request (it holds '
        .. '"aliyun", "zego" and "confirm")' },
      { {}, 'body: give "aliyun", "zego" or both' },
      { { aliyun = { domain_name = "push.example.com", app_name = "*", stream_names = { "ok-1" } },
          zego = { stream_ids = { "ok-1" } } }, "aliyun: the forbid list cannot hold it" },
      { { zego = { stream_ids = { "ok-1" }, region = "x" } }, "zego: " },
      { { zego = { stream_id = "a", stream_ids = { "b" } } }, "fields 'zego.stream_id' and 'zego.stream_ids': give one "
        .. "of them" },
      { { zego = { "ok-1" } }, "field 'zego' must be a JSON object" },
    } do
      local res = post(t.edge.ports[1], "/streams/forbid", cjson.encode(row[1]), TOKEN)
      assert.equal(400, res.status, res.body)
      local err = cjson.decode(res.body).error
      assert.equal(row[2], err:sub(1, #row[2]))
    end
    assert.is_nil(PROVIDERS.zego.state(t.emulator, "ok-1"))
  end)
end)
