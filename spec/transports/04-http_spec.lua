-- The clients over the real libcurl transport, against a scripted server the
-- spec starts on 127.0.0.1: success, provider error, HTTP 5xx (retried),
-- malformed JSON, a server that never answers, and connection refused.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local process = require "spec.helpers.process"
local socket = require "socket"
local cjson = require "cjson"

-- GET `path` from the scripted server on `port`: the decoded JSON (read by Content-Length).
local function control(port, path)
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(5)
  c:send("GET " .. path .. " HTTP/1.1\r\nHost: x\r\n\r\n")
  local length
  repeat
    local line = assert(c:receive("*l"))
    length = length or tonumber(line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)"))
  until line == ""
  local body = assert(c:receive(length))
  c:close()
  return cjson.decode(body)
end

-- How many requests the server has seen (its /stats).
local function stats(port)
  return control(port, "/stats").requests
end

local free_port = process.free_port

describe("clients over HTTP", function()
  local servers, ports = {}, {}

  setup(function()
    for _, route in ipairs { "/json", "/error", "/500", "/malformed", "/hang", "/echo" } do
      -- (their life, a bound for when this process dies without stopping them, times process.slowdown():
      -- this file under valgrind on a busy machine is many times slower)
      servers[route], ports[route] = process.httpserver(100, route)
    end
  end)

  teardown(function()
    for _, child in pairs(servers) do process.stop(child) end
  end)

  local function ali(route, opts)
    local o = { access_key_id = "AK", access_key_secret = "sk",
                endpoint = "http://127.0.0.1:" .. (ports[route] or route),
                retry = { base_ms = 1, throttle_base_ms = 1 } }
    for k, v in pairs(opts or {}) do o[k] = v end
    return assert(aliyun.new(o))
  end

  local STREAM = { domain_name = "d", app_name = "a", stream_name = "s" }

  it("decodes a success", function()
    local cli = ali("/json")
    local res = assert(cli:resume_live_stream(STREAM))
    assert.same({ RequestId = "req-json", Data = { ok = true } }, res)
    cli:close()
  end)

  it("sends exactly the prepared request", function()
    local cli = ali("/echo", { clock = function() return 1700000000 end, nonce = function() return "n-1" end })
    local req = assert(cli:prepare("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t 1" }))
    local answer = assert(cli:call("StopLivePullToPush", { Region = "cn-shanghai", TaskId = "t 1" }))
    -- The answer quotes the request, and so shows its signature scrubbed; the
    -- server's own record has what went on the wire.
    assert.truthy(answer.headers[1])
    local echo = control(ports["/echo"], "/last")
    assert.equal("GET", echo.method)
    assert.equal("/?Region=cn-shanghai&TaskId=t%201", echo.target)
    local got = {}
    for _, h in ipairs(echo.headers) do got[h[1]:lower()] = h[2] end
    for name, value in pairs(req.headers) do assert.equal(value, got[name], name) end
    assert.truthy(got.authorization:find("Signature=%x%x%x%x"))
    local shown = {}
    for _, h in ipairs(answer.headers) do shown[h[1]:lower()] = h[2] end
    assert.equal(got.authorization:gsub("Signature=%x+", "Signature=<redacted>"), shown.authorization)
    assert.equal("streamctl/" .. require("streamctl.version")._VERSION, got["user-agent"])
    assert.equal("", echo.body)
    cli:close()
  end)

  it("returns the provider's error without retrying it", function()
    local before = stats(ports["/error"])
    local _, err = ali("/error"):resume_live_stream(STREAM)
    assert.equal("InvalidParameter", err.code, tostring(err))
    assert.equal(400, err.http_status)
    assert.equal("req-err", err.request_id)
    assert.equal("bad StreamName", err.message)
    assert.equal(1, err.attempts)
    assert.equal(before + 1, stats(ports["/error"]))
  end)

  it("retries HTTP 5xx up to the attempts", function()
    local before = stats(ports["/500"])
    local _, err = ali("/500"):stop_live_pull_to_push { region = "cn-shanghai", task_id = "t" }
    assert.equal("InternalError", err.code)
    assert.equal(500, err.http_status)
    assert.equal(3, err.attempts)
    assert.equal(before + 3, stats(ports["/500"]))
  end)

  it("reports malformed JSON as InvalidResponse", function()
    local _, err = ali("/malformed"):resume_live_stream(STREAM)
    assert.equal("InvalidResponse", err.code)
    assert.equal(200, err.http_status)
  end)

  it("times out on a server that never answers", function()
    -- (times process.slowdown(): a request not yet written when the timeout passes is not sent)
    local _, err = ali("/hang", { timeout_ms = 300 * process.slowdown(), retry = false }):resume_live_stream(STREAM)
    assert.equal("Timeout", err.code, tostring(err))
    assert.is_true(err.sent)
    assert.is_true(err.outcome_unknown)
    -- Not resent: the block list was asked instead, and that timed out too.
    assert.matches("the look-up by DescribeLiveStreamsBlockList failed too", err.message, 1, true)
    assert.equal(1, err.attempts)
  end)

  it("reports a refused connection as a NetworkError that never left", function()
    local _, err = ali(free_port(), { retry = { attempts = 2, base_ms = 1 } }):resume_live_stream(STREAM)
    assert.equal("NetworkError", err.code)
    assert.is_false(err.sent)
    assert.is_true(err.retryable)
    assert.equal(2, err.attempts)
  end)

  it("runs a ZEGO batch concurrently over one client", function()
    local z = assert(zego.new { app_id = 1234567890, server_secret = "s", endpoint = "http://127.0.0.1:" .. ports["/echo"],
                                rate_limits = false })
    -- /echo answers 200 with a body that is not a ZEGO answer: every stream ends the same way, none is lost;
    -- an answer came back that could not be read, so each outcome is unknown, not failed.
    local ids = {}
    for i = 1, 60 do ids[i] = "s" .. i end
    local report = z:resume_rtc_streams { stream_ids = ids, concurrency = 3 }
    assert.equal(60, report.total)
    assert.equal(3, report.calls)
    assert.equal(0, report.failed)
    assert.equal(60, report.unknown)
    for i = 1, 60 do
      assert.equal("s" .. i, report.results[i].stream)
      assert.equal("InvalidResponse", report.results[i].error.code, tostring(report.results[i].error))
    end
    z:close()
  end)
end)
