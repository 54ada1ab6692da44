-- sanitizers: none (what it tests runs in nginx, not in this process)
-- interpreters: lua5.4 (what it tests runs in nginx, under LuaJIT, whatever interpreter runs this file)
-- Callbacks and signed URLs checked inside nginx, as they arrive: the
-- nginx forms of streamctl.edge.callbacks and streamctl.edge.authkey (headers, raw
-- query and body as nginx hands them over, a body nginx buffered to a
-- file), with replay refused across two workers through one shared dict,
-- and across two nginx instances (two edges) through one Redis, with a key
-- rotation and a Redis that cannot answer.
local cjson = require "cjson"
local socket = require "socket"
local nginx = require "spec.helpers.nginx"
local core = require "streamctl.core"

local available, why_not = nginx.available()
assert(available, why_not) -- `make test` installs nginx; a spec that cannot run fails

local KEY, DOMAIN = "yourkey", "learn.aliyundoc.com"
local ZEGO_SECRET = "secret"
local PLAY_KEY = "aliyunliveexp1234"

-- Answers 200 with the event as JSON, or 401 with the error's code.
local DRIVER = [[
local callbacks = require "streamctl.edge.callbacks"
local authkey = require "streamctl.edge.authkey"
local M = {}
local function answer(event, err)
  if not event then
    ngx.status = 401
    ngx.say(require("cjson").encode { code = err.code, message = err.message, worker = ngx.worker.id() })
    return
  end
  ngx.say(require("cjson").encode { event = event, worker = ngx.worker.id() })
end
function M.aliyun()
  answer(callbacks.aliyun.check_nginx { key = "yourkey", domain = "learn.aliyundoc.com", shared_dict = "callbacks",
                                        now = tonumber(ngx.var.arg_now) })
end
function M.zego()
  answer(callbacks.zego.check_nginx { secret = "secret", shared_dict = "callbacks", now = tonumber(ngx.var.http_x_now) })
end
function M.play()
  local ok, err = authkey.verify_nginx { keys = { "newkey", "aliyunliveexp1234" }, now = tonumber(ngx.var.http_x_now) }
  answer(ok and { ok = true }, err)
end
return M
]]

-- One HTTP/1.0 request on a connection of its own: status, body.
local function request(port, method, target, headers, body)
  local s = socket.tcp()
  s:settimeout(10)
  assert(s:connect("127.0.0.1", port))
  local lines = { method .. " " .. target .. " HTTP/1.0", "Host: 127.0.0.1" }
  for k, v in pairs(headers or {}) do lines[#lines + 1] = k .. ": " .. v end
  if body then lines[#lines + 1] = "Content-Length: " .. #body end
  assert(s:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")))
  local raw = s:receive("*a") or ""
  s:close()
  local status = tonumber(raw:match("^HTTP/1%.%d (%d+)"))
  return status, cjson.decode(raw:match("\r\n\r\n(.*)$") or "null")
end

describe("callbacks checked inside nginx", function()
  -- (the work is nginx's, under LuaJIT whatever runs this spec: once, in the plain Lua 5.4 run)
  if rawget(_G, "jit") or require("spec.helpers.process").preloaded() then
    pending("run once, in the plain Lua 5.4 run: the workers are nginx's, the same under any test interpreter")
    return
  end
  local server
  lazy_setup(function()
    server = nginx.start {
      workers = 2,
      prepare = function(dir) nginx.write_file(dir .. "/driver.lua", DRIVER) end,
      lua_path = function(dir) return dir .. "/?.lua" end,
      lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
      http = function(ports)
        return table.concat({
          "lua_shared_dict callbacks 1m;",
          "server {",
          "  listen 127.0.0.1:" .. ports[1] .. " reuseport;",
          "  client_body_buffer_size 1k;", -- (a larger body goes to a file: read there)
          "  location = /cb/aliyun { content_by_lua_block { require('driver').aliyun() } }",
          "  location = /cb/zego { content_by_lua_block { require('driver').zego() } }",
          "  location /video/ { content_by_lua_block { require('driver').play() } }",
          "}",
        }, "\n    ")
      end,
    }
  end)
  lazy_teardown(function() if server then server:stop() end end)

  local QUERY = "action=publish&ip=192.168.1.1&id=world&app=example.aliyundoc.com&appname=liveApp&time=1609220385"
  local SIGNED = { ["ALI-LIVE-TIMESTAMP"] = "1519375990", ["ALI-LIVE-SIGNATURE"] = "9e226fc2c250be266e3657e156f68c12" }
  -- (the edges' clock, now=1519375690, a window before the timestamp: each callback's window began now,
  -- after the Redis this spec started; one that began before its start would be refused, issue 87)

  it("Aliyun: the documented signature passes once; a retry on any worker is refused; forged and stale are 401",
    function()
    local port = server.ports[1]
    local status, body = request(port, "GET", "/cb/aliyun?" .. QUERY .. "&now=1519375690", SIGNED)
    assert.equal(200, status, cjson.encode(body))
    assert.same({ "publish", "world", "example.aliyundoc.com/liveApp/world" },
      { body.event.action, body.event.id, body.event.stream })
    -- the same callback again, on whichever worker takes it (reuseport spreads the
    -- connections): seen, through the shared dict
    for _ = 1, 10 do
      status, body = request(port, "GET", "/cb/aliyun?" .. QUERY .. "&now=1519375690", SIGNED)
      assert.same({ 401, "ReplayedCallback" }, { status, body.code })
    end
    local forged = { ["ALI-LIVE-TIMESTAMP"] = "1519375990", ["ALI-LIVE-SIGNATURE"] = string.rep("0", 32) }
    status, body = request(port, "GET", "/cb/aliyun?" .. QUERY:gsub("world", "w2") .. "&now=1519375690", forged)
    assert.same({ 401, "InvalidSignature" }, { status, body.code })
    status, body = request(port, "GET", "/cb/aliyun?" .. QUERY:gsub("world", "w3") .. "&now=1519376291", SIGNED)
    assert.same({ 401, "StaleCallback" }, { status, body.code })
    status, body = request(port, "GET", "/cb/aliyun?" .. QUERY:gsub("world", "w4") .. "&now=1519375690",
      { ["ALI-LIVE-TIMESTAMP"] = "1519375990" })
    assert.same({ 401, "MalformedCallback" }, { status, body.code })
    -- the signature twice, in two cases (a good one and a forged one): refused, neither picked
    local twice = { ["ALI-LIVE-TIMESTAMP"] = "1519375990", ["ALI-LIVE-SIGNATURE"] = SIGNED["ALI-LIVE-SIGNATURE"],
                    ["ali-live-signature"] = string.rep("0", 32) }
    status, body = request(port, "GET", "/cb/aliyun?" .. QUERY:gsub("world", "w5") .. "&now=1519375690", twice)
    assert.same({ 401, "MalformedCallback" }, { status, body.code })
    -- more than 100 headers: nginx would leave the rest (a second signature among them) unread
    local many = { ["ALI-LIVE-TIMESTAMP"] = "1519375990", ["ALI-LIVE-SIGNATURE"] = SIGNED["ALI-LIVE-SIGNATURE"] }
    for i = 1, 100 do many["X-Filler-" .. i] = "x" end
    status, body = request(port, "GET", "/cb/aliyun?" .. QUERY:gsub("world", "w6") .. "&now=1519375690", many)
    assert.same({ 401, "MalformedCallback" }, { status, body.code })
    assert.is_nil(server:error_log():find("yourkey", 1, true))
  end)

  it("ZEGO: a JSON body, and one nginx wrote to a file, pass once; a replay is refused", function()
    local port = server.ports[1]
    local event = { event = "stream_create", appid = "1234567890", timestamp = "1470820198", nonce = "123412",
                    signature = "5bd59fd62953a8059fb7eaba95720f66d19e4517", stream_id = "s1",
                    extra_info = string.rep("x", 4000) } -- (more than client_body_buffer_size)
    -- (nginx's clock a window before the timestamp: the callback's window begins as the dict's memory
    -- does, at its first use, this driver marking no start of nginx; issue 87)
    local headers = { ["Content-Type"] = "application/json", ["X-Now"] = "1470819898" }
    local status, body = request(port, "POST", "/cb/zego", headers, cjson.encode(event))
    assert.equal(200, status, cjson.encode(body))
    assert.same({ "stream_create", "s1" }, { body.event.event, body.event.stream_id })
    status, body = request(port, "POST", "/cb/zego", headers, cjson.encode(event))
    assert.same({ 401, "ReplayedCallback" }, { status, body.code })
    event.nonce = "123413"
    status, body = request(port, "POST", "/cb/zego", headers, cjson.encode(event))
    assert.same({ 401, "InvalidSignature" }, { status, body.code })
  end)

  it("signed playback URLs: the documented one until its expiry, with either key; 401 after, or changed", function()
    local port = server.ports[1]
    local good = "/video/standard?auth_key=1622194197-0-0-5552ff52b5e4e20387c6dc18afce206b"
    local status, body = request(port, "GET", good, { ["X-Now"] = "1622194197" })
    assert.equal(200, status, cjson.encode(body))
    status, body = request(port, "GET", good, { ["X-Now"] = "1622194198" })
    assert.same({ 401, "ExpiredAuthKey" }, { status, body.code })
    status, body = request(port, "GET", good:gsub("standard", "standard2"), { ["X-Now"] = "1622194000" })
    assert.same({ 401, "InvalidMd5Hash" }, { status, body.code })
    -- the path as sent is what is signed: an escaped one is not the same path
    status, body = request(port, "GET", good:gsub("standard", "st%%61ndard"), { ["X-Now"] = "1622194000" })
    assert.same({ 401, "InvalidMd5Hash" }, { status, body.code })
    status, body = request(port, "GET", "/video/standard", { ["X-Now"] = "1622194000" })
    assert.same({ 401, "InvalidAuthKey" }, { status, body.code })
    -- a URL made by sign_url with the other key passes
    local url = require("streamctl.edge.authkey").sign_url { url = "http://127.0.0.1/video/new", key = "newkey",
                                                        timestamp = 1622194197 }
    status = request(port, "GET", url:match("^http://[^/]+(.*)$"), { ["X-Now"] = "1622194000" })
    assert.equal(200, status)
    assert.is_nil(server:error_log():find(PLAY_KEY, 1, true))
  end)

  it("(the keys above are the documented examples')", function()
    assert.equal("9e226fc2c250be266e3657e156f68c12", core.digest_hex("md5", "|", false, DOMAIN, "1519375990", KEY))
    assert.equal("5bd59fd62953a8059fb7eaba95720f66d19e4517",
      core.digest_hex("sha1", "", true, ZEGO_SECRET, "1470820198", "123412"))
  end)
end)

-- Two edges behind one load balancer: each its own nginx, sharing what they
-- have seen through one Redis (streamctl.store.redis.replay_store), and
-- checking the NotifyAuthKey during a rotation ({ new, old }, then new alone).
describe("callbacks checked by two edges that share one Redis", function()
  if rawget(_G, "jit") or require("spec.helpers.process").preloaded() then
    pending("run once, in the plain Lua 5.4 run: the workers are nginx's, the same under any test interpreter")
    return
  end
  local redis_helper = require "spec.helpers.redis"
  local EDGE = [[
local callbacks = require "streamctl.edge.callbacks"
local replay = assert(require("streamctl.store.redis").replay_store(os.getenv("REDIS_URL") .. "?timeout_ms=1000"))
local M = {}
function M.aliyun()
  local keys = ngx.var.arg_keys == "new" and "newkey" or { "newkey", "yourkey" }
  local event, err = callbacks.aliyun.check_nginx { key = keys, domain = "learn.aliyundoc.com", replay = replay,
                                                    now = tonumber(ngx.var.arg_now) }
  if not event then
    ngx.status = err.kind == "server" and 503 or 401
    ngx.say(require("cjson").encode { code = err.code, message = err.message })
    return
  end
  ngx.say(require("cjson").encode { event = event })
end
return M
]]
  local redis, edges = nil, {}
  lazy_setup(function()
    redis = redis_helper.start { password = "edge-pw" }
    for i = 1, 2 do
      edges[i] = nginx.start_driver { driver = EDGE, name = "edge", locations = { ["/cb/aliyun"] = "aliyun" },
        workers = 2, reuseport = true, env = { REDIS_URL = redis.url } }
    end
  end)
  lazy_teardown(function()
    for _, e in ipairs(edges) do e:stop() end
    if redis then redis:stop() end
  end)

  local QUERY = "action=publish&ip=192.168.1.1&id=world&app=example.aliyundoc.com&appname=liveApp&time=1609220385"
  local SIGNED = { ["ALI-LIVE-TIMESTAMP"] = "1519375990", ["ALI-LIVE-SIGNATURE"] = "9e226fc2c250be266e3657e156f68c12" }
  -- (the edges' clock, now=1519375690, a window before the timestamp: each callback's window began now,
  -- after the Redis this spec started; one that began before its start would be refused, issue 87)

  it("a callback taken by one edge is refused by the other, and again by the first", function()
    local status, body = request(edges[1].ports[1], "GET", "/cb/aliyun?" .. QUERY .. "&now=1519375690", SIGNED)
    assert.equal(200, status, cjson.encode(body))
    assert.equal("example.aliyundoc.com/liveApp/world", body.event.stream)
    for _, edge in ipairs { edges[2], edges[1], edges[2] } do
      status, body = request(edge.ports[1], "GET", "/cb/aliyun?" .. QUERY .. "&now=1519375690", SIGNED)
      assert.same({ 401, "ReplayedCallback" }, { status, body.code })
    end
    -- another stream's callback in the same second: taken once, by whichever edge sees it first
    status, body = request(edges[2].ports[1], "GET", "/cb/aliyun?" .. QUERY:gsub("world", "w2") .. "&now=1519375690",
      SIGNED)
    assert.equal(200, status, cjson.encode(body))
    status, body = request(edges[1].ports[1], "GET", "/cb/aliyun?" .. QUERY:gsub("world", "w2") .. "&now=1519375690",
      SIGNED)
    assert.same({ 401, "ReplayedCallback" }, { status, body.code })
  end)

  it("a rotation: signed by the old key, taken while both are given, refused once the old one is removed", function()
    local status, body = request(edges[1].ports[1], "GET", "/cb/aliyun?" .. QUERY:gsub("world", "r1")
      .. "&now=1519375690&keys=new", SIGNED)
    assert.same({ 401, "InvalidSignature", "the signature does not match" }, { status, body.code, body.message })
    status, body = request(edges[2].ports[1], "GET", "/cb/aliyun?" .. QUERY:gsub("world", "r1")
      .. "&now=1519375690&keys=both", SIGNED)
    assert.equal(200, status, cjson.encode(body))
  end)

  it("a Redis that cannot answer: 503, ReplayStoreUnavailable, nothing taken; taken once it is back", function()
    redis:kill()
    local status, body = request(edges[1].ports[1], "GET", "/cb/aliyun?" .. QUERY:gsub("world", "d1")
      .. "&now=1519375690", SIGNED)
    assert.same({ 503, "ReplayStoreUnavailable" }, { status, body.code })
    redis:restart()
    -- (back without its data: a callback whose window began before the restart may have been seen
    -- there, and a worker that had used the store refuses it; this one's began now: its timestamp a
    -- window ahead of the edge's clock)
    status, body = request(edges[2].ports[1], "GET", "/cb/aliyun?" .. QUERY:gsub("world", "d1")
      .. "&now=1519375690", SIGNED)
    assert.equal(200, status, cjson.encode(body))
    for _, edge in ipairs(edges) do
      assert.is_nil(edge:error_log():find("edge-pw", 1, true))
      assert.is_nil(edge:error_log():find("yourkey", 1, true))
    end
  end)
end)
