-- An attempt goes on the wire once (issue 66), for the libcurl transport: the
-- module's easy handle and streamctl.transport.curl's multi, against a keep-alive
-- server of this spec's own on 127.0.0.1 (spec/helpers/keepalive.lua)
-- that logs every request that arrives.
--
-- libcurl sends a request again by itself, on a fresh connection, when the reused
-- connection it went on closes before any byte of an answer, whether or not the
-- server had read it (Curl_retry_request: "Connection died, retrying a fresh
-- connect"). A server that applied the request and dropped the connection got it
-- twice, the second time without a slot (a ForbidLiveStream, same nonce, within
-- 1 ms). curl_request.c's on_prereq stops that resend: the attempt is a
-- NetworkError with sent = true, its outcome unknown.
local cjson = require "cjson"
local socket = require "socket"
local curl = require "streamctl.curl"
local transport = require "streamctl.transport.curl"
local errors = require "streamctl.base.errors"
local keepalive = require "spec.helpers.keepalive"
local process = require "spec.helpers.process"

local SILENT = "the reused connection closed after the request had left, before any answer: not sent again "
  .. "(the request may have been applied)"

describe("an attempt goes on the wire once (libcurl)", function()
  local ka, base

  local function arrivals(id) return ka.arrivals(id) end

  -- Waits (bounded) until the server has shut its side of connection `conn`.
  local function wait_ended(conn)
    for _ = 1, 1000 do
      for _, c in ipairs(ka.log().ended) do
        if c == conn then
          socket.sleep(0.05) -- (its FIN on its way over loopback)
          return
        end
      end
      socket.sleep(0.01)
    end
    error("the server never shut connection " .. conn)
  end

  setup(function()
    ka = keepalive.start()
    base = ka.url("")
  end)

  teardown(function() ka.stop() end)

  before_each(function() ka.ask("/reset") end)

  -- The two ways a script sends: the module's easy handle, and the transport's multi.
  local WAYS = {
    { name = "curl.easy", new = function()
        local h = curl.easy {}
        return function(url)
          local res, err = h:request { url = url }
          return res, err
        end, function() h:close() end
      end },
    { name = "streamctl.transport.curl", new = function()
        local t = assert(transport.new {})
        local n = 0
        return function(url)
          n = n + 1
          assert(t.start(n, { url = url }))
          for _ = 1, 200 do
            local done = t.poll(0.1 * process.slowdown())
            if done[1] then return done[1].res, done[1].err end
          end
          error("no completion for " .. url)
        end, t.close
      end },
  }

  for _, way in ipairs(WAYS) do
    describe(way.name, function()
      it("a request the reused connection's server read and dropped unanswered arrives once: NetworkError, "
        .. "sent, outcome unknown", function()
        local send, close = way.new()
        local id = way.name .. "-silent"
        local res = assert(send(base .. "/ok?id=" .. id .. "-first"))
        assert.equal("ok " .. id .. "-first", res.body)
        local res2, err = send(base .. "/drop?id=" .. id)
        close()
        local got, first = arrivals(id), arrivals(id .. "-first")[1]
        assert.equal(1, #got, cjson.encode(got))
        assert.same({ first.conn, 2 }, { got[1].conn, got[1].nth }) -- on the reused connection, and only there
        assert.is_nil(res2)
        assert.same({ code = "NetworkError", message = SILENT, sent = true },
          { code = err.code, message = err.message, sent = err.sent })
        -- and the engine takes it as an attempt whose outcome is unknown
        local e = errors.transport("aliyun", "ForbidLiveStream", err, true)
        assert.same({ true, true }, { e.sent, e.outcome_unknown })
      end)

      it("a pooled connection its server shut while idle is not used: the request goes once, on a fresh "
        .. "connection, and is answered", function()
        local send, close = way.new()
        local id = way.name .. "-idle"
        assert(send(base .. "/idle-close?ms=20&id=" .. id .. "-first"))
        wait_ended(arrivals(id .. "-first")[1].conn)
        local res, err = send(base .. "/ok?id=" .. id)
        close()
        assert.is_nil(err and err.message)
        assert.equal("ok " .. id, res.body)
        local got, first = arrivals(id), arrivals(id .. "-first")[1]
        assert.equal(1, #got, cjson.encode(got))
        assert.are_not.equal(first.conn, got[1].conn)
        assert.equal(1, got[1].nth)
      end)

      it("keeps keep-alive: requests answered in turn share one connection", function()
        local send, close = way.new()
        local id = way.name .. "-keep"
        for i = 1, 3 do assert.equal("ok " .. id .. i, assert(send(base .. "/ok?id=" .. id .. i)).body) end
        close()
        local conn = arrivals(id .. 1)[1].conn
        for i = 1, 3 do assert.same({ { conn = conn, nth = i } }, { { conn = arrivals(id .. i)[1].conn,
                                                                      nth = arrivals(id .. i)[1].nth } }) end
      end)
    end)
  end
end)
