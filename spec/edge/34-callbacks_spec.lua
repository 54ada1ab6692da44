-- tier: unit
-- Provider callbacks and signed URLs, verified (streamctl.edge.callbacks,
-- streamctl.edge.authkey), in plain Lua: the providers' documented examples byte
-- for byte, then every check (form, window, signature, replay) failing on
-- its own. The nginx forms run in spec/35 against real nginx.
local core = require "streamctl.core"
local callbacks = require "streamctl.edge.callbacks"
local authkey = require "streamctl.edge.authkey"

-- The documented examples (docs/callbacks.md says where each is from).
local ALI = { domain = "learn.aliyundoc.com", timestamp = "1519375990", key = "yourkey",
              signature = "9e226fc2c250be266e3657e156f68c12" }
local ZEGO = { secret = "secret", timestamp = "1470820198", nonce = "123412",
               signature = "5bd59fd62953a8059fb7eaba95720f66d19e4517" }
local URL = { url = "rtmp://demo.aliyundoc.com/video/standard", key = "aliyunliveexp1234", timestamp = 1622194197,
              auth_key = "1622194197-0-0-5552ff52b5e4e20387c6dc18afce206b" }

local copy = require("spec.helpers.checks").copy

-- Every message of `err` is free of the secrets given.
local function no_secret(err, ...)
  for _, s in ipairs { ... } do assert.is_nil(tostring(err):find(s, 1, true), tostring(err)) end
end

describe("the C core's digests for callbacks and signed URLs", function()
  it("gives the documented hashes, a secret's bytes never made a Lua string", function()
    assert.equal(ALI.signature, core.digest_hex("md5", "|", false, ALI.domain, ALI.timestamp, ALI.key))
    assert.equal(ALI.signature, core.digest_hex("md5", "|", false, ALI.domain, ALI.timestamp, core.secret(ALI.key)))
    -- ZEGO sorts the three as strings: nonce, timestamp, secret here
    assert.equal(ZEGO.signature, core.digest_hex("sha1", "", true, core.secret("secret"), "1470820198", "123412"))
    assert.equal(ZEGO.signature, core.digest_hex("sha1", "", true, "123412", "secret", "1470820198"))
    assert.not_equal(ZEGO.signature, core.digest_hex("sha1", "", false, "secret", "1470820198", "123412"))
    -- sorting by bytes: a prefix first ("12" < "123"), then byte order
    assert.equal(core.digest_hex("sha1", "", false, "12", "123", "a"), core.digest_hex("sha1", "", true, "a", "123", "12"))
    assert.equal("5552ff52b5e4e20387c6dc18afce206b",
      core.digest_hex("md5", "-", false, "/video/standard", "1622194197", "0", "0", "aliyunliveexp1234"))
  end)

  it("refuses what it cannot hash, and compares in constant time (equal lengths only)", function()
    assert.has_error(function() core.digest_hex("sha512", "", false, "x") end)
    -- (SHA-256 too, the credentials cache's digest of a secret: FIPS 180-2's "abc", in parts and as a secret)
    local abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert.same({ abc, abc }, { core.digest_hex("sha256", "", false, "a", "b", "c"),
                                core.digest_hex("sha256", "", false, core.secret("abc")) })
    assert.has_error(function() core.digest_hex("md5", "", false) end)
    assert.has_error(function() core.digest_hex("md5", "", false, "1", "2", "3", "4", "5", "6", "7", "8", "9") end)
    assert.has_error(function() core.digest_hex("md5", "", false, {}) end)
    assert.is_true(core.equal("abc", "abc"))
    assert.is_false(core.equal("abc", "abd"))
    assert.is_false(core.equal("abc", "ab"))
    assert.is_false(core.equal("", "a"))
    assert.is_true(core.equal("", ""))
  end)
end)

describe("Alibaba Cloud ingest callbacks", function()
  local now = 1519375990 + 10
  local function verify(extra)
    return callbacks.aliyun.verify(copy(ALI, copy({ now = now, replay = callbacks.memory_replay() }, extra)))
  end

  it("accepts the documented signature, with the key as a string or a streamctl.secret", function()
    assert.is_true(verify())
    assert.is_true(verify { key = core.secret("yourkey") })
    assert.equal(ALI.signature, callbacks.aliyun.signature("yourkey", ALI.domain, ALI.timestamp))
  end)

  it("refuses a wrong key, a wrong domain, another timestamp, and an upper-case signature (401 material)", function()
    for _, extra in ipairs { { key = "otherkey" }, { domain = "other.example.com" },
                             { signature = ALI.signature:upper() } } do
      local ok, err = verify(extra)
      assert.is_nil(ok)
      assert.equal(extra.signature and "MalformedCallback" or "InvalidSignature", err.code)
      no_secret(err, "yourkey", "otherkey", ALI.signature)
    end
    local ok, err = verify { timestamp = "1519375991" }
    assert.is_nil(ok)
    assert.equal("InvalidSignature", err.code)
  end)

  it("refuses a timestamp outside the window (default 300 s, at most 3600), either way", function()
    assert.is_true(verify { now = 1519375990 + 300 })
    local ok, err = verify { now = 1519375990 + 301 }
    assert.is_nil(ok)
    assert.same({ "StaleCallback", "clock" }, { err.code, err.kind })
    assert.equal("streamctl: aliyun: StaleCallback: the timestamp is -301 s from now, outside the window of 300 s",
      tostring(err))
    assert.equal("StaleCallback", select(2, verify { now = 1519375990 - 301 }).code)
    assert.is_true(verify { now = 1519375990 + 3600, window = 3600 })
    assert.equal("StaleCallback", select(2, verify { now = 1519375990 + 31, window = 30 }).code)
    assert.has_error(function() verify { window = 3601 } end)
    assert.has_error(function() verify { window = 0 } end)
  end)

  it("refuses a malformed timestamp or signature, naming which", function()
    for _, extra in ipairs { { timestamp = "" }, { timestamp = "15193759.0" }, { timestamp = "1234567890123" },
                             { signature = "" }, { signature = ALI.signature .. "0" }, { signature = "g" .. ALI.signature:sub(2) } } do
      local ok, err = verify(extra)
      assert.is_nil(ok)
      assert.equal("MalformedCallback", err.code)
    end
    local _, err = verify { timestamp = false }
    assert.equal("streamctl: aliyun: MalformedCallback: the timestamp is not 1 to 12 decimal digits", tostring(err))
  end)

  it("refuses a callback seen before within its window; another event of the same second passes", function()
    local replay = callbacks.memory_replay()
    assert.is_true(verify { replay = replay, event = "publish&stream1" })
    local ok, err = verify { replay = replay, event = "publish&stream1" }
    assert.is_nil(ok)
    assert.same({ "ReplayedCallback", "auth" }, { err.code, err.kind })
    assert.is_true(verify { replay = replay, event = "publish&stream2" })
    -- a forged one is never remembered: the real one still passes after it
    assert.equal("InvalidSignature", select(2, verify { replay = replay, event = "publish&stream3", key = "x" }).code)
    assert.is_true(verify { replay = replay, event = "publish&stream3" })
    -- once its window has passed, its timestamp is refused instead
    assert.equal("StaleCallback", select(2, verify { replay = replay, event = "publish&stream1", now = now + 300 }).code)
  end)

  it("takes a list of keys for a rotation: any one signs; a wrong list names how many it tried", function()
    assert.is_true(verify { key = { "newkey", "yourkey" } })
    assert.is_true(verify { key = { core.secret("yourkey"), "newkey" } })
    assert.is_true(verify { key = { "yourkey" } })
    local ok, err = verify { key = { "newkey" } }
    assert.is_nil(ok)
    assert.same({ "InvalidSignature", "the signature does not match" }, { err.code, err.message })
    ok, err = verify { key = { "newkey", "otherkey" } } -- (the old key removed: refused)
    assert.is_nil(ok)
    assert.same({ "InvalidSignature", "the signature does not match any of the 2 keys" }, { err.code, err.message })
    no_secret(err, "newkey", "otherkey", "yourkey", ALI.signature)
    for _, case in ipairs {
      { {}, "bad argument #1 to 'verify' (key must be a key or a list of 1 to 4 keys)" },
      { { "a", "b", "c", "d", "e" }, "bad argument #1 to 'verify' (key must be a key or a list of 1 to 4 keys)" },
      { { "a", "" }, "bad argument #1 to 'verify' (key[2] must be a non-empty string or a streamctl.secret)" },
      { { "a", core.secret("") }, "bad argument #1 to 'verify' (key[2] is empty)" },
    } do
      local raised, why = pcall(verify, { key = case[1] })
      assert.is_false(raised)
      assert.equal(case[2], (tostring(why):gsub("^[^:]*:%d+: ", "")))
    end
  end)

  it("misuse raises: no key, a domain with |, replay that is not a store", function()
    assert.has_error(function() verify { key = "" } end)
    assert.has_error(function() verify { key = false } end)
    assert.has_error(function() verify { domain = "a|b" } end)
    assert.has_error(function() verify { replay = {} } end)
    assert.has_error(function() callbacks.aliyun.verify "x" end)
  end)

  describe("as the request arrives", function()
    -- the documented example's query (masked values filled in)
    local QUERY = "action=publish&ip=192.168.1.1&id=world&app=example.aliyundoc.com&appname=liveApp&time=1609220385"
      .. "&usrargs=a%3D1&node=cdnvideocenter0102071101.cm3&height=720&width=1280"
    local function req(extra)
      return copy({ method = "GET", query = QUERY, headers = {
        ["ali-live-timestamp"] = ALI.timestamp, ["ali-live-signature"] = ALI.signature } }, extra)
    end
    local function opts(extra)
      return copy({ key = "yourkey", domain = ALI.domain, now = now, replay = callbacks.memory_replay() }, extra)
    end

    it("gives the event's fields, the stream named", function()
      local event = assert(callbacks.aliyun.check(req(), opts()))
      assert.same({ action = "publish", ip = "192.168.1.1", id = "world", app = "example.aliyundoc.com",
                    appname = "liveApp", time = "1609220385", usrargs = "a=1", node = "cdnvideocenter0102071101.cm3",
                    height = "720", width = "1280", stream = "example.aliyundoc.com/liveApp/world" }, event)
    end)

    it("refuses a POST, no action or stream, repeated fields, a missing or repeated header", function()
      local o = opts()
      for _, r in ipairs {
        req { method = "POST" }, req { query = "id=world&appname=a" }, req { query = "action=publish&appname=a" },
        req { query = QUERY .. "&id=other" }, req { query = QUERY .. "&action=publish_done" },
        req { headers = { ["ali-live-timestamp"] = ALI.timestamp } },
        req { headers = { ["ali-live-timestamp"] = { ALI.timestamp, ALI.timestamp }, ["ali-live-signature"] = ALI.signature } },
      } do
        local event, err = callbacks.aliyun.check(r, o)
        assert.is_nil(event)
        assert.equal("MalformedCallback", err.code)
      end
    end)

    it("compares header names without regard to case: one name twice, in two cases, is refused", function()
      -- as nginx's get_headers(100, true) hands them: the names as the sender wrote them
      local upper = { method = "GET", query = QUERY, headers = {
        ["ALI-LIVE-TIMESTAMP"] = ALI.timestamp, ["Ali-Live-Signature"] = ALI.signature } }
      assert.equal("example.aliyundoc.com/liveApp/world", assert(callbacks.aliyun.check(upper, opts())).stream)
      for _, forged in ipairs { "0000000000000000000000000000000f", ALI.signature } do
        local twice = { method = "GET", query = QUERY, headers = { ["ali-live-timestamp"] = ALI.timestamp,
          ["ALI-LIVE-SIGNATURE"] = ALI.signature, ["ali-live-signature"] = forged } }
        local event, err = callbacks.aliyun.check(twice, opts())
        assert.is_nil(event)
        assert.equal("MalformedCallback", err.code)
        assert.equal("streamctl: aliyun: MalformedCallback: the request has more than one ALI-LIVE-SIGNATURE "
          .. "header (names compared without regard to case)", tostring(err))
      end
    end)

    it("a retry of one event is refused, under a new timestamp too; publish_done of the same stream is not", function()
      local o = opts()
      assert(callbacks.aliyun.check(req(), o))
      assert.equal("ReplayedCallback", select(2, callbacks.aliyun.check(req(), o)).code)
      -- the provider's retry: the same event, a new ALI-LIVE-TIMESTAMP and so a new signature
      local retry = req { headers = { ["ali-live-timestamp"] = "1519375991",
        ["ali-live-signature"] = callbacks.aliyun.signature("yourkey", ALI.domain, "1519375991") } }
      assert.equal("ReplayedCallback", select(2, callbacks.aliyun.check(retry, o)).code)
      assert(callbacks.aliyun.check(req { query = QUERY:gsub("action=publish", "action=publish_done") }, o))
    end)

    it("takes the publisher's own parameters as they come: a broken escape kept, a repeat of them allowed", function()
      local event = assert(callbacks.aliyun.check(req { query = QUERY:gsub("usrargs=a%%3D1", "usrargs=off=50%%")
        .. "&usrargs=again" }, opts()))
      assert.equal("off=50%", event.usrargs)
      assert.equal("world", event.id)
    end)
  end)
end)

describe("ZEGO callbacks", function()
  local now = 1470820198 + 5
  local function verify(extra)
    return callbacks.zego.verify(copy(ZEGO, copy({ now = now, replay = callbacks.memory_replay() }, extra)))
  end

  it("accepts the documented signature; refuses a wrong secret, nonce or timestamp", function()
    assert.is_true(verify())
    assert.is_true(verify { secret = core.secret("secret") })
    for _, extra in ipairs { { secret = "secret2" }, { nonce = "123413" }, { timestamp = "1470820199" } } do
      local ok, err = verify(extra)
      assert.is_nil(ok)
      assert.equal("InvalidSignature", err.code)
      no_secret(err, "secret2", ZEGO.signature)
    end
  end)

  it("takes a list of secrets for a rotation: the old one refused once it is removed", function()
    assert.is_true(verify { secret = { "secret2", "secret" } })
    local ok, err = verify { secret = { "secret2" } }
    assert.is_nil(ok)
    assert.equal("InvalidSignature", err.code)
    no_secret(err, "secret2", ZEGO.signature)
  end)

  it("refuses a signature seen before (its nonce makes it one callback's), stale and malformed ones", function()
    local replay = callbacks.memory_replay()
    assert.is_true(verify { replay = replay })
    assert.equal("ReplayedCallback", select(2, verify { replay = replay }).code)
    assert.equal("StaleCallback", select(2, verify { now = 1470820198 + 301 }).code)
    for _, extra in ipairs { { nonce = "" }, { nonce = "a b" }, { nonce = string.rep("1", 65) },
                             { timestamp = "-1" }, { signature = ZEGO.signature:sub(1, 32) } } do
      assert.equal("MalformedCallback", select(2, verify(extra)).code)
    end
  end)

  describe("as the request arrives", function()
    local function body(fields)
      local t = { event = "stream_create", appid = "1234567890", timestamp = 1470820198, nonce = "123412",
                  signature = ZEGO.signature, stream_id = "s1", room_id = "r1" }
      for k, v in pairs(fields or {}) do t[k] = v end
      return require("cjson").encode(t)
    end
    local function opts() return { secret = "secret", now = now, replay = callbacks.memory_replay() } end

    it("reads a JSON body (a timestamp as a number or a string) and a form body", function()
      local event = assert(callbacks.zego.check({ method = "POST", headers = {}, body = body() }, opts()))
      assert.same({ "stream_create", "s1", "r1" }, { event.event, event.stream_id, event.room_id })
      assert(callbacks.zego.check({ method = "POST", headers = {}, body = body { timestamp = "1470820198" } }, opts()))
      local form = "event=stream_close&appid=1234567890&timestamp=1470820198&nonce=123412&signature=" .. ZEGO.signature
        .. "&stream_id=s%201&type=0"
      event = assert(callbacks.zego.check({ method = "POST", body = form,
        headers = { ["content-type"] = "application/x-www-form-urlencoded" } }, copy(opts(), { form = true })))
      assert.same({ "stream_close", "s 1", "0" }, { event.event, event.stream_id, event.type })
    end)

    it("refuses ZEGO's retry of an event (a new timestamp and nonce: the same stream_sid and stream_seq)", function()
      local o = opts()
      local first = body { stream_sid = "9001", stream_seq = 3 }
      assert(callbacks.zego.check({ method = "POST", body = first }, o))
      local sig = callbacks.zego.signature("secret", "1470820199", "555")
      local retry = body { stream_sid = "9001", stream_seq = 3, timestamp = "1470820199", nonce = "555", signature = sig }
      assert.equal("ReplayedCallback", select(2, callbacks.zego.check({ method = "POST", body = retry }, o)).code)
      -- the next change of that stream is a new event
      local next_sig = callbacks.zego.signature("secret", "1470820199", "556")
      assert(callbacks.zego.check({ method = "POST", body = body { stream_sid = "9001", stream_seq = 4,
        timestamp = "1470820199", nonce = "556", signature = next_sig } }, o))
    end)

    it("refuses a GET, an empty, oversized or non-JSON body, and a fractional timestamp", function()
      for _, r in ipairs {
        { method = "GET", body = body() }, { method = "POST", body = "" }, { method = "POST", body = "[1]" },
        { method = "POST", body = "{" }, { method = "POST", body = body { timestamp = 1470820198.5 } },
        { method = "POST", body = string.rep(" ", callbacks.MAX_BODY) .. body() },
      } do
        local event, err = callbacks.zego.check(r, opts())
        assert.is_nil(event)
        assert.equal("MalformedCallback", err.code)
      end
    end)
  end)
end)

describe("replay stores", function()
  it("a memory store remembers each for its window, and refuses rather than forget one still in it", function()
    local s = callbacks.memory_replay { max = 2 }
    assert.is_true(s:add("a", 10, 100))
    assert.is_false(s:add("a", 10, 105))
    assert.is_true(s:add("b", 10, 105))
    local ok, why = s:add("c", 10, 106)
    assert.is_nil(ok)
    assert.equal("the replay store holds 2 callbacks still within their window", why)
    -- a has left its window (100 + 10): room again, and a is new again
    assert.is_true(s:add("c", 10, 110))
    assert.is_true(s:add("a", 10, 116))
  end)

  it("a full store refuses the callback (ReplayStoreFull: the provider delivers it again)", function()
    local s = callbacks.memory_replay { max = 1 }
    local base = { now = 1519375990, replay = s }
    assert.is_true(callbacks.aliyun.verify(copy(ALI, copy(base, { event = "1" }))))
    local ok, err = callbacks.aliyun.verify(copy(ALI, copy(base, { event = "2" })))
    assert.is_nil(ok)
    assert.same({ "ReplayStoreFull", "server" }, { err.code, err.kind })
  end)

  it("a store that cannot answer refuses the callback with its code (never taken for 'not seen')", function()
    local down = { add = function() return nil, "Redis at 10.0.0.5:6379: timeout", "ReplayStoreUnavailable" end }
    local ok, err = callbacks.aliyun.verify(copy(ALI, { now = 1519375990, replay = down }))
    assert.is_nil(ok)
    assert.same({ "ReplayStoreUnavailable", "server", "Redis at 10.0.0.5:6379: timeout" },
      { err.code, err.kind, err.message })
  end)

  it("by default, one store in the process", function()
    local o = copy(ALI, { now = 1519375990, event = "default-store" })
    assert.is_true(callbacks.aliyun.verify(o))
    assert.equal("ReplayedCallback", select(2, callbacks.aliyun.verify(copy(o))).code)
  end)
end)

describe("signed URLs (auth_key, type A)", function()
  it("signs the documented example byte for byte", function()
    assert.equal(URL.auth_key, authkey.sign { uri = "/video/standard", key = URL.key, timestamp = URL.timestamp })
    assert.equal(URL.auth_key, authkey.sign { uri = "/video/standard", key = core.secret(URL.key),
                                             timestamp = URL.timestamp, rand = 0, uid = "0" })
    assert.equal(URL.url .. "?auth_key=" .. URL.auth_key, authkey.sign_url(copy(URL, { auth_key = false })))
    -- a query the URL has is kept (not signed), the parameter added after it
    assert.equal("http://d.example.com/video/standard.flv?vhost=x&auth_key=1622194197-0-0-"
      .. core.digest_hex("md5", "-", false, "/video/standard.flv", "1622194197", "0", "0", URL.key),
      authkey.sign_url { url = "http://d.example.com/video/standard.flv?vhost=x", key = URL.key, timestamp = 1622194197 })
    -- ttl: the timestamp is the expiry, now + ttl (the documented example: made at 16:49:57, 40 minutes)
    assert.equal(URL.auth_key, authkey.sign { uri = "/video/standard", key = URL.key, ttl = 2400, now = 1622194197 - 2400 })
  end)

  it("verifies until the timestamp (the expiry), plus delta; either key of the domain", function()
    local o = { uri = "/video/standard", key = URL.key, auth_key = URL.auth_key }
    assert.is_true(authkey.verify(copy(o, { now = URL.timestamp })))
    local ok, err = authkey.verify(copy(o, { now = URL.timestamp + 1 }))
    assert.is_nil(ok)
    assert.same({ "ExpiredAuthKey", "streamctl: aliyun: ExpiredAuthKey: INVALID TIMESTAMP: expired 1 s ago" },
      { err.code, tostring(err) })
    assert.is_true(authkey.verify(copy(o, { now = URL.timestamp + 60, delta = 60 })))
    assert.is_true(authkey.verify(copy(o, { now = URL.timestamp, key = false, keys = { "newkey", URL.key } })))
  end)

  it("refuses another key, another URI, a changed part, and a malformed value, as the service names them", function()
    local o = { uri = "/video/standard", key = URL.key, auth_key = URL.auth_key, now = URL.timestamp - 10 }
    for _, extra in ipairs { { key = "otherkey" }, { uri = "/video/standard2" }, { uri = "/video/standard.flv" },
                             { auth_key = "1622194197-1-0-5552ff52b5e4e20387c6dc18afce206b" } } do
      local ok, err = authkey.verify(copy(o, extra))
      assert.is_nil(ok)
      assert.equal("InvalidMd5Hash", err.code)
      assert.matches("INVALID MD5HASH", tostring(err))
      no_secret(err, URL.key, "otherkey")
    end
    for _, bad in ipairs { "", "1622194197-0-0", "1622194197-0-0-5552ff52", "x-0-0-5552ff52b5e4e20387c6dc18afce206b",
                           "1622194197-0-0-5552ff52b5e4e20387c6dc18afce206b-1", false } do
      local ok, err = authkey.verify(copy(o, { auth_key = bad }))
      assert.is_nil(ok)
      assert.equal("InvalidAuthKey", err.code)
    end
  end)

  it("a random rand makes each URL different; misuse raises", function()
    local r1, r2 = authkey.rand(), authkey.rand()
    assert.matches("^%x+$", r1)
    assert.equal(32, #r1)
    assert.not_equal(r1, r2)
    local a = authkey.sign { uri = "/a/b", key = "k", timestamp = 1, rand = r1 }
    assert.equal("1-" .. r1 .. "-0-", a:sub(1, 37))
    for _, bad in ipairs { { uri = "a/b" }, { uri = "/a b" }, { uri = "/a?b" }, { key = "" }, { timestamp = false },
                           { ttl = 0, timestamp = false }, { rand = "a-b" }, { uid = "" } } do
      assert.has_error(function() authkey.sign(copy({ uri = "/a/b", key = "k", timestamp = 1 }, bad)) end)
    end
    assert.has_error(function() authkey.sign_url { url = "no-scheme/a", key = "k", timestamp = 1 } end)
    assert.has_error(function() authkey.verify { uri = "/a", auth_key = "x" } end)
  end)
end)
