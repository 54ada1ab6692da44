-- sanitizers: none (what it tests runs in nginx, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- Issue 69, admission at the edge, end to end: two edges of the OpenResty
-- example (four nginx workers each) share one forbid list in Redis; the
-- emulator, playing Alibaba Cloud Live's remote authentication, asks the
-- first edge before each ingest and honours its answer. A stream forbidden
-- through the second edge (a oneshot forbid: the provider lists nothing,
-- so only the door can keep it out) is refused at the door by every worker
-- of both edges from the forbid's answer on; resumed, admitted again. ZEGO
-- tokens are issued only for streams the door admits. Verdicts only: no
-- rate or latency is asserted.
local cjson = require "cjson"
local checks = require "spec.helpers.checks"
local nginx = require "spec.helpers.nginx"
local emu = require "spec.helpers.emulator"
local edge_helper = require "spec.helpers.edge"
local redis_helper = require "spec.helpers.redis"
local token04 = require "streamctl.edge.token04"

local ISSUER = edge_helper.ISSUER_TOKEN
local TOKEN, ZEGO_APP, ZEGO_SECRET = edge_helper.TOKEN, edge_helper.ZEGO_APP, edge_helper.ZEGO_SECRET
local post, concurrently, raw_request = edge_helper.post, edge_helper.concurrently, edge_helper.raw_request

local available, why_not = nginx.available()
assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

describe("admission at the edge: remote authentication and tokens over a shared forbid list", function()
  local emulator, redis, a, b
  lazy_setup(function()
    emulator = emu.start {}
    redis = redis_helper.start {}
    a = edge_helper.start_edge(emulator, { workers = 4, env = { STREAMCTL_REDIS_URL = redis.url } })
    b = edge_helper.start_edge(emulator, { workers = 4, env = { STREAMCTL_REDIS_URL = redis.url } })
  end)
  lazy_teardown(function()
    for _, s in ipairs { a, b, redis, emulator } do
      if s then s:stop() end
    end
  end)

  -- `n` questions, each on a connection of its own (any worker may take each), to `edge`.
  local function ask(edge, stream, n)
    local raws = {}
    for i = 1, n do
      raws[i] = raw_request("GET", "/admission/aliyun?domain=push.example.com&app=live&stream=" .. stream
        .. "&ip=10.0.0." .. i)
    end
    local codes = {}
    for _, res in ipairs(concurrently(edge.ports[1], raws, 30)) do codes[#codes + 1] = res.status end
    return codes
  end
  local function all(codes, status)
    for _, c in ipairs(codes) do if c ~= status then return false end end
    return #codes > 0
  end

  it("refuses a stream forbidden through the other edge, in every worker, from the forbid's answer on", function()
    emulator:control("POST", "remote_auth", { domain = "push.example.com",
      url = "http://127.0.0.1:" .. a.ports[1] .. "/admission/aliyun" })
    -- admitted while it is not listed
    local answer = emulator:online { domain = "push.example.com", app = "live", stream = "cam-9" }
    assert.same({ "push.example.com/live/cam-9" }, answer.marked)
    assert.equal("admitted: 200", answer.remote_auth["push.example.com/live/cam-9"])
    emulator:online({ domain = "push.example.com", app = "live", stream = "cam-9" }, "DELETE")
    -- forbidden through edge b: oneshot, so the provider keeps no block on it
    local res = post(b.ports[1], "/streams/aliyun/forbid",
      '{"domain_name":"push.example.com","app_name":"live","stream_name":"cam-9","oneshot":true}', TOKEN)
    assert.equal(200, res.status, res.body)
    assert.equal("1", redis:cli("SISMEMBER", "{streamctl:desired}:set", "aliyun|push.example.com|live|cam-9"))
    -- from now on every worker of both edges refuses it, at once
    assert.is_true(all(ask(a, "cam-9", 32), 403))
    assert.is_true(all(ask(b, "cam-9", 32), 403))
    answer = emulator:online { domain = "push.example.com", app = "live", stream = "cam-9" }
    assert.same({ "push.example.com/live/cam-9" }, answer.refused)
    assert.equal("refused by remote authentication (403)", answer.remote_auth["push.example.com/live/cam-9"])
    assert.is_nil(emulator:online().online["push.example.com/live/cam-9"])
    -- the door says why
    local one = edge_helper.get(a.ports[1], "/admission/aliyun?domain=push.example.com&app=live&stream=cam-9")
    assert.same({ code = "Forbidden", reason = "aliyun stream push.example.com/live/cam-9 is on the forbid list" },
      cjson.decode(one.body))
    -- resumed through edge a: admitted again, by every worker
    res = post(a.ports[1], "/streams/aliyun/resume",
      '{"domain_name":"push.example.com","app_name":"live","stream_name":"cam-9"}', TOKEN)
    assert.equal(200, res.status, res.body)
    assert.is_true(all(ask(b, "cam-9", 32), 200))
    assert.same({ "push.example.com/live/cam-9" },
      emulator:online({ domain = "push.example.com", app = "live", stream = "cam-9" }).marked)
    -- a question that breaks a field's rule is refused, naming it
    one = edge_helper.get(a.ports[1], "/admission/aliyun?domain=push.example.com&app=live")
    assert.equal(403, one.status)
    assert.same({ code = "InvalidRequest", reason = "stream_name must be 1 to 256 printable characters, without "
      .. "spaces, /, |, ? or #" }, cjson.decode(one.body))
    local metrics = edge_helper.get(a.ports[1], "/metrics").body
    assert.truthy(metrics:find('streamctl_admissions_total{provider="aliyun",verdict="deny",code="Forbidden"} ',
      1, true), metrics)
  end)

  -- (issue 88: one reconciler for every edge on one list, by the list's lease in Redis)
  it("reconciles from one edge: the other says another holds the lease", function()
    local said = "this edge reconciles the list"
    local other = "another edge reconciles the list"
    assert(checks.wait_until(function()
      local la, lb = a:error_log(), b:error_log()
      return (la:find(said, 1, true) or lb:find(said, 1, true)) and (la:find(other, 1, true) or lb:find(other, 1, true))
    end, 30), "the edges did not settle who reconciles:\n" .. a:error_log() .. b:error_log())
    local la, lb = a:error_log(), b:error_log()
    assert.is_true((la:find(said, 1, true) ~= nil) ~= (lb:find(said, 1, true) ~= nil), "both, or neither, reconcile")
    assert.is_nil((la:find(said, 1, true) and la or lb):find(other, 1, true))
  end)

  it("issues ZEGO tokens for admitted streams only; one for a forbidden stream is refused", function()
    local res = post(a.ports[1], "/streams/zego/forbid", '{"stream_id":"room-9-host"}', TOKEN)
    assert.equal(200, res.status, res.body)
    local body = '{"user_id":"u9","room_id":"room-9","login":true,"publish":true,"stream_ids":["room-9-host"]}'
    res = post(b.ports[1], "/tokens/zego", body, ISSUER)
    assert.equal(403, res.status, res.body)
    assert.same({ error = "Forbidden", reason = "zego stream room-9-host is on the forbid list" },
      cjson.decode(res.body))
    res = post(b.ports[1], "/tokens/zego", body:gsub("room%-9%-host", "room-9-guest"), ISSUER)
    assert.equal(200, res.status, res.body)
    local t = assert(token04.read(cjson.decode(res.body).token, { app_id = tonumber(ZEGO_APP), secret = ZEGO_SECRET }))
    assert.same({ "u9", "room-9", true, { "room-9-guest" } }, { t.user_id, t.room_id, t.publish, t.stream_ids })
    assert.equal(401, post(b.ports[1], "/tokens/zego", body, "wrong-token").status)
    -- (the moderation API's token is not this endpoint's: issue 88)
    assert.equal(401, post(b.ports[1], "/tokens/zego", body, TOKEN).status)
    res = post(b.ports[1], "/tokens/zego", '{"user_id":"bad user"}', ISSUER)
    assert.equal(400, res.status, res.body)
    assert.equal("InvalidParameter", cjson.decode(res.body).error)
    -- (issue 88: a publish grant names its streams)
    res = post(b.ports[1], "/tokens/zego", '{"user_id":"u9","room_id":"room-9","login":true,"publish":true}', ISSUER)
    assert.equal(400, res.status, res.body)
    assert.matches("^stream_ids: a publish grant names its streams", cjson.decode(res.body).reason)
  end)

  -- Issue 88: every input to the door held to its rule, and a name the list cannot hold never kept.
  it("refuses a forbid the list cannot hold; answers a domain as DNS has it; reads every argument", function()
    local function door(query)
      local res = edge_helper.get(a.ports[1], "/admission/aliyun?" .. query)
      local v = cjson.decode(res.body) or {}
      return res.status, v.code, v.reason
    end
    local res = post(a.ports[1], "/streams/aliyun/forbid",
      '{"domain_name":"push.example.com","app_name":"*","stream_name":"cam-7"}', TOKEN)
    assert.equal(400, res.status, res.body)
    assert.equal("the forbid list cannot hold it: desired[1] app_name must not be '*' (ForbidLiveStream takes no "
      .. "wildcard)", cjson.decode(res.body).error)
    assert.is_nil(redis:cli("SMEMBERS", "{streamctl:desired}:set"):find("*", 1, true))
    res = post(a.ports[1], "/streams/aliyun/forbid",
      '{"domain_name":"push.example.com","app_name":"live","stream_name":"cam-7"}', TOKEN)
    assert.equal(200, res.status, res.body)
    -- the same domain as DNS reads it: refused as listed
    assert.same({ 403, "Forbidden", "aliyun stream PUSH.Example.COM./live/cam-7 is on the forbid list" },
      { door("domain=PUSH.Example.COM.&app=live&stream=cam-7") })
    assert.same({ 403, "InvalidRequest", "domain_name must be a domain without a port (the list holds domains)" },
      { door("domain=push.example.com:1935&app=live&stream=cam-7") })
    assert.same({ 403, "InvalidRequest", "query argument 'stream' given more than once" },
      { door("domain=push.example.com&app=live&stream=free-1&stream=cam-7") })
    local many = {}
    for i = 1, 100 do many[i] = "x" .. i .. "=1" end
    assert.same({ 403, "InvalidRequest", "more than 100 query arguments" },
      { door(table.concat(many, "&") .. "&domain=push.example.com&app=live&stream=free-1") })
    assert.same({ 200, "Admitted", "aliyun stream push.example.com/live/free-1 is not on the forbid list" },
      { door(table.concat(many, "&", 1, 90) .. "&domain=push.example.com&app=live&stream=free-1") })
    -- /admission: the same door for nginx-rtmp (a form), SRS and MediaMTX (JSON), in their words
    local function hook(path, ctype, body)
      return edge_helper.concurrently(a.ports[1], { raw_request("POST", path, body, { ["Content-Type"] = ctype }) },
        30)[1]
    end
    local FORM = "application/x-www-form-urlencoded"
    local form = "call=publish&app=live&tcurl=rtmp://push.example.com/live&addr=10.0.0.7&name="
    assert.same({ 403, "refused\n" }, { hook("/admission", FORM, form .. "cam-7").status,
      hook("/admission", FORM, form .. "cam-7").body })
    assert.equal(200, hook("/admission", FORM, form .. "free-1").status)
    local srs = '{"action":"on_publish","client_id":"1","ip":"10.0.0.7","vhost":"__defaultVhost__","app":"live",'
      .. '"stream":"%s","param":""}'
    assert.same({ 200, '{"code":0}' }, { hook("/admission?domain=push.example.com", "application/json",
      srs:format("free-1")).status, hook("/admission?domain=push.example.com", "application/json",
      srs:format("free-1")).body })
    assert.equal(403, hook("/admission?domain=push.example.com", "application/json", srs:format("cam-7")).status)
    local mtx = '{"user":"","password":"","token":"","ip":"10.0.0.8","action":"publish","path":"live/%s",'
      .. '"protocol":"rtmp","id":null,"query":""}'
    assert.equal(403, hook("/admission?domain=push.example.com", "application/json", mtx:format("cam-7")).status)
    assert.equal(200, hook("/admission?domain=push.example.com", "application/json", mtx:format("free-1")).status)
    local big = hook("/admission", FORM, form .. string.rep("x", 9000))
    assert.equal(413, big.status, big.body) -- (nginx.conf's client_max_body_size: a refusal to every dialect)
  end)
end)
