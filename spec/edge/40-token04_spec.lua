-- ZEGO's Token04 (issue 69): streamctl.core's AES pinned by the published
-- GCM test vectors; tokens made by streamctl.edge.token04 read by an
-- independent implementation of the published format (spec/helpers/token04.py,
-- Python's cryptography) and its tokens read here; a byte changed, another
-- secret, another AppId, an expired token, the CBC form each refused
-- with its reason; every field of `issue` checked by its rule.
local core = require "streamctl.core"
local token04 = require "streamctl.edge.token04"
local process = require "spec.helpers.process"

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local q = process.quote
local APP, SECRET, NOW = 1234567890, "0123456789abcdef0123456789abcdef", 1795800000

-- The independent implementation: its output's first line, and whether it exited 0.
local function python(...)
  local args = {}
  for i, a in ipairs { ... } do args[i] = q(tostring(a)) end
  local p = assert(io.popen("/usr/bin/python3 " .. q(ROOT .. "/spec/helpers/token04.py") .. " "
    .. table.concat(args, " ") .. " 2>/dev/null; echo \"exit $?\""))
  local out = p:read("a")
  p:close()
  local line, code = out:match("^(.-)\n?exit (%d+)\n$")
  return line, code == "0"
end

-- (a byte changed: + 1, as Lua 5.1 has no ~)
local function bump(b) return string.char((b + 1) % 256) end

local function hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end
local function unhex(h) return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end)) end

describe("AES from streamctl.core", function()
  it("AES-256-GCM: the GCM specification's test cases 13 and 14 (zero key and nonce), sealed and opened", function()
    local key, nonce = string.rep("\0", 32), string.rep("\0", 12)
    assert.equal("530f8afbc74536b9a963b4f1c4cb738b", hex(core.aes_gcm_seal(key, nonce, "")))
    local sealed = core.aes_gcm_seal(key, nonce, string.rep("\0", 16))
    assert.equal("cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919", hex(sealed))
    assert.equal(string.rep("\0", 16), core.aes_gcm_open(key, nonce, sealed))
    -- a tag, a ciphertext byte, the key or the nonce changed: nothing handed out
    local flipped = sealed:sub(1, 31) .. bump(sealed:byte(32))
    assert.is_nil(core.aes_gcm_open(key, nonce, flipped))
    assert.is_nil(core.aes_gcm_open(key, nonce, string.char(1) .. sealed:sub(2)))
    assert.is_nil(core.aes_gcm_open(string.rep("\1", 32), nonce, sealed))
    assert.is_nil(core.aes_gcm_open(key, string.rep("\1", 12), sealed))
    assert.is_nil(core.aes_gcm_open(key, nonce, sealed:sub(1, 15)))
    -- a streamctl.secret as the key, the same bytes
    assert.equal(hex(sealed), hex(core.aes_gcm_seal(core.secret(key), nonce, string.rep("\0", 16))))
  end)

  -- (NIST SP 800-38A, F.2.5 CBC-AES256.Encrypt: its four blocks, then the whole block of PKCS#7 padding)
  it("AES-CBC seal: NIST's CBC-AES256 vector, padded; open gives it back", function()
    local key = unhex("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4")
    local iv = unhex("000102030405060708090a0b0c0d0e0f")
    local plain = unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
      .. "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710")
    local sealed = core.aes_cbc_seal(key, iv, plain)
    assert.equal(80, #sealed)
    assert.equal("f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d"
      .. "39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b", hex(sealed:sub(1, 64)))
    assert.equal(hex(plain), hex(core.aes_cbc_open(key, iv, sealed)))
    assert.equal(16, #core.aes_cbc_seal(key, iv, ""))
    assert.equal("", core.aes_cbc_open(key, iv, core.aes_cbc_seal(key, iv, "")))
  end)

  it("refuses a key not 16, 24 or 32 bytes and a nonce not 12 (misuse raises)", function()
    local function raised(fn, ...)
      local ok, err = pcall(fn, ...)
      assert.is_false(ok)
      return (tostring(err):match("^bad argument (#%d+) to '[%w_.?]+' %("))
        .. " " .. tostring(err):match("(%(.*%))$")
    end
    assert.equal("#1 (an AES key of 16, 24 or 32 bytes expected)",
      raised(core.aes_gcm_seal, string.rep("k", 31), string.rep("\0", 12), "x"))
    assert.equal("#2 (a 12-byte nonce expected)", raised(core.aes_gcm_open, string.rep("k", 32), string.rep("\0", 16),
      "x"))
    assert.equal("#2 (a 16-byte IV expected)", raised(core.aes_cbc_open, string.rep("k", 32), "iv", "x"))
    assert.equal("#2 (a 16-byte IV expected)", raised(core.aes_cbc_seal, string.rep("k", 32), "iv", "x"))
  end)

  it("base64: RFC 4648's examples both ways; anything not the one padded text of its bytes is nil", function()
    for plain, text in pairs { [""] = "", f = "Zg==", fo = "Zm8=", foo = "Zm9v", foob = "Zm9vYg==",
                               fooba = "Zm9vYmE=", foobar = "Zm9vYmFy" } do
      assert.equal(text, core.base64_encode(plain))
      assert.equal(plain, core.base64_decode(text))
    end
    assert.equal(unhex("fbff"), core.base64_decode("+/8="))
    for _, bad in ipairs { "Zg", "Zg=", "Zh==", " Zg==", "Zg==\n", "Z===", "Zm9v=Yg=", "Zm-v", "Zm_v", "Zm9v\0" } do
      assert.is_nil(core.base64_decode(bad), bad)
    end
  end)
end)

describe("Token04", function()
  it("issued here, read by the independent implementation: every field as given", function()
    local tok = assert(token04.issue { app_id = APP, secret = SECRET, user_id = "u-1", room_id = "room-1",
      login = true, publish = true, stream_ids = { "s-1", "s_2" }, now = NOW, ttl = 3600 })
    assert.equal("04", tok:sub(1, 2))
    local out, ok = python("read", APP, SECRET, tok)
    assert.is_true(ok, out)
    local t = require("cjson").decode(out)
    assert.same({ APP, "u-1", NOW, NOW + 3600 }, { t.app_id, t.user_id, t.ctime, t.expire })
    assert.equal('{"room_id":"room-1","privilege":{"1":1,"2":1},"stream_id_list":["s-1","s_2"]}', t.payload)
    assert.truthy(t.nonce >= 0 and t.nonce < 2 ^ 31)
    -- without privileges the payload is empty; two tokens of the same fields differ (their nonces)
    local a = assert(token04.issue { app_id = APP, secret = SECRET, user_id = "u-1", now = NOW })
    local b = assert(token04.issue { app_id = APP, secret = SECRET, user_id = "u-1", now = NOW })
    assert.not_equal(a, b)
    out = python("read", APP, SECRET, a)
    assert.equal("", require("cjson").decode(out).payload)
    assert.equal(NOW + token04.DEFAULT_TTL, require("cjson").decode(out).expire)
    -- and it reads back here, the payload's grants too
    local r = assert(token04.read(tok, { app_id = APP, secret = SECRET, now = NOW + 1 }))
    assert.same({ "gcm", "u-1", "room-1", true, true, { "s-1", "s_2" } },
      { r.mode, r.user_id, r.room_id, r.login, r.publish, r.stream_ids })
  end)

  it("issued by the independent implementation, read here", function()
    local tok = assert(python("issue", APP, SECRET, "user@x", NOW, 60,
      '{"room_id":"r","privilege":{"1":1,"2":0},"stream_id_list":null}'))
    local r = assert(token04.read(tok, { app_id = APP, secret = SECRET, now = NOW + 59 }))
    assert.same({ APP, "user@x", NOW, NOW + 60, "r", true, false }, { r.app_id, r.user_id, r.ctime, r.expire,
      r.room_id, r.login, r.publish })
    assert.is_nil(r.stream_ids)
  end)

  it("refuses, each with its reason: a byte changed, another secret, another AppId, expired, not a token", function()
    local tok = assert(token04.issue { app_id = APP, secret = SECRET, user_id = "u", now = NOW, ttl = 60 })
    local o = { app_id = APP, secret = SECRET, now = NOW + 1 }
    local function refused(t, opts)
      local r, err = token04.read(t, opts or o)
      assert.is_nil(r)
      assert.is_nil(tostring(err):find(SECRET, 1, true))
      return err.code .. ": " .. err.message
    end
    -- every byte of the body changed in turn: never read (the expiry, the lengths, the nonce, the
    -- ciphertext, the tag, the mode)
    local body = core.base64_decode(tok:sub(3))
    for i = 1, #body do
      local changed = "04" .. core.base64_encode(body:sub(1, i - 1) .. bump(body:byte(i)) .. body:sub(i + 1))
      assert.is_nil((token04.read(changed, o)), "byte " .. i)
    end
    assert.equal("InvalidToken: does not verify with this secret (a byte changed, or another secret)",
      refused("04" .. core.base64_encode(body:sub(1, 30) .. bump(body:byte(31)) .. body:sub(32))))
    assert.equal("InvalidToken: does not verify with this secret (a byte changed, or another secret)",
      refused(tok, { app_id = APP, secret = string.rep("f", 32), now = NOW + 1 }))
    assert.equal("InvalidToken: made for AppId 1234567890, not 42", refused(tok, { app_id = 42, secret = SECRET,
      now = NOW + 1 }))
    assert.equal("TokenExpired: expired at 2026-11-27T17:21:00Z (now 2026-11-27T17:21:00Z)",
      refused(tok, { app_id = APP, secret = SECRET, now = NOW + 60 }))
    assert.equal("InvalidToken: not a Token04: it does not start with 04", refused("03" .. tok:sub(3)))
    assert.equal("InvalidToken: not a Token04: what follows 04 is not base64", refused(tok .. " "))
    assert.equal("InvalidToken: cut short: its ciphertext is " .. (#body - 25) .. " bytes, fewer are there",
      refused("04" .. core.base64_encode(body:sub(1, #body - 2))))
  end)

  it("reads the CBC form only when told to (it authenticates nothing)", function()
    local tok = assert(python("issue-cbc", APP, SECRET, "old-user", NOW, 60))
    local r, err = token04.read(tok, { app_id = APP, secret = SECRET, now = NOW + 1 })
    assert.is_nil(r)
    assert.equal("the AES-CBC form (zego_server_assistant's generators), which authenticates nothing: refused (legacy_cbc = true reads it)",
      err.message)
    r = assert(token04.read(tok, { app_id = APP, secret = SECRET, now = NOW + 1, legacy_cbc = true }))
    assert.same({ "cbc", "old-user" }, { r.mode, r.user_id })
  end)

  -- (issue 89: its reasons once told a forger whether the padding, the JSON or a field failed)
  it("reads a CBC token that fails after decryption with one reason, whatever failed", function()
    local function cbc(plain, secret)
      local iv = string.rep("a", 16)
      local sealed = core.aes_cbc_seal(secret or SECRET, iv, plain)
      local be = function(n, w) local s = "" for _ = 1, w do s = string.char(n % 256) .. s n = math.floor(n / 256) end
        return s end
      return "04" .. core.base64_encode(be(NOW + 60, 8) .. be(16, 2) .. iv .. be(#sealed, 2) .. sealed)
    end
    local good = string.format('{"app_id":%d,"user_id":"u","ctime":%d,"expire":%d,"nonce":1,"payload":""}', APP, NOW,
      NOW + 60)
    local reasons = {}
    for _, tok in ipairs {
      cbc(good, string.rep("f", 32)),                                   -- another secret: the padding fails
      cbc("not json"),                                                  -- padding right, no JSON
      cbc('{"app_id":"x"}'),                                            -- a field of the wrong type
      cbc((good:gsub(tostring(APP), "42"))),                            -- another AppId
      cbc((good:gsub('"payload":""', '"payload":"{"'))),                -- a payload that is no JSON object
    } do
      local r, err = token04.read(tok, { app_id = APP, secret = SECRET, now = NOW + 1, legacy_cbc = true })
      assert.is_nil(r)
      reasons[err.code .. ": " .. err.message] = true
    end
    assert.same({ ["InvalidToken: does not decrypt with this secret to a token's content (the CBC form)"] = true },
      reasons)
    assert.equal("u", assert(token04.read(cbc(good), { app_id = APP, secret = SECRET, now = NOW + 1,
      legacy_cbc = true })).user_id)
  end)

  it("issues the CBC form when asked, as the generators make it: read back by the independent reader", function()
    local tok = assert(token04.issue { app_id = APP, secret = SECRET, user_id = "u9", now = NOW, ttl = 60,
      form = "cbc", room_id = "r1", login = true, publish = true, stream_ids = { "s1" } })
    local body = core.base64_decode(tok:sub(3))
    assert.equal(16, body:byte(9) * 256 + body:byte(10)) -- (a 16-byte IV: 16 characters of 0-9a-f)
    assert.truthy(body:sub(11, 26):find("^%x+$"))
    local out, ok = python("read-cbc", APP, SECRET, tok)
    assert.is_true(ok, out)
    local t = require("cjson").decode(out)
    assert.same({ "u9", NOW, NOW + 60, '{"room_id":"r1","privilege":{"1":1,"2":1},"stream_id_list":["s1"]}' },
      { t.user_id, t.ctime, t.expire, t.payload })
    local r = assert(token04.read(tok, { app_id = APP, secret = SECRET, now = NOW + 1, legacy_cbc = true }))
    assert.same({ "cbc", "u9", { "s1" } }, { r.mode, r.user_id, r.stream_ids })
    assert.is_nil(token04.read(tok, { app_id = APP, secret = SECRET, now = NOW + 1 }))
    local _, err = token04.issue { app_id = APP, secret = SECRET, user_id = "u9", form = "ecb" }
    assert.equal("field 'form' must be \"gcm\" or \"cbc\"", err.message)
  end)

  it("checks every field of issue by its rule, naming it; nothing made", function()
    local base = { app_id = APP, secret = SECRET, user_id = "u" }
    local rows = {
      { { app_id = 0 }, "field 'app_id' must be an integer from 1 to 4294967295" },
      { { app_id = 2 ^ 32 }, "field 'app_id' must be an integer from 1 to 4294967295" },
      { { secret = "short" }, "field 'secret' must be the ServerSecret's 32 bytes (got 5)" },
      { { user_id = "" }, "field 'user_id' must be a non-empty string" },
      { { user_id = string.rep("u", 65) }, "field 'user_id' must be at most 64 bytes (got 65)" },
      { { user_id = "a b" }, "field 'user_id' may hold only digits, letters and ~!@#$%^&*()_+=-`;',.<> (ZEGO's rule)" },
      { { user_id = "a/b" }, "field 'user_id' may hold only digits, letters and ~!@#$%^&*()_+=-`;',.<> (ZEGO's rule)" },
      { { room_id = string.rep("r", 128) }, "field 'room_id' must be at most 127 bytes (got 128)" },
      { { room_id = "r\n" }, "field 'room_id' may hold only digits, letters and ~!@#$%^&*()_+=-`;',.<> (ZEGO's rule)" },
      { { stream_ids = { "ok", "not ok" } }, "field 'stream_ids' item 2 may hold only digits, letters, - and _ "
        .. "(ZEGO's rule)" },
      { { stream_ids = { string.rep("s", 257) } }, "field 'stream_ids' item 1 must be at most 256 bytes (got 257)" },
      { { stream_ids = "s" }, "field 'stream_ids' must be a list of stream IDs" },
      { { ttl = 0 }, "field 'ttl' must be whole seconds from 1 to 2073600 (24 days)" },
      { { ttl = 24 * 86400 + 1 }, "field 'ttl' must be whole seconds from 1 to 2073600 (24 days)" },
      { { ttl = 1.5 }, "field 'ttl' must be whole seconds from 1 to 2073600 (24 days)" },
      { { login = "yes" }, "field 'login' must be true or false" },
      { { expire = 1 }, "field 'expire' is not a field of a Token04" },
    }
    for _, row in ipairs(rows) do
      local o = {}
      for k, v in pairs(base) do o[k] = v end
      for k, v in pairs(row[1]) do o[k] = v end
      local tok, err = token04.issue(o)
      assert.is_nil(tok, row[2])
      assert.same({ "InvalidParameter", row[2] }, { err.code, err.message })
    end
    assert.has_error(function() token04.issue("u") end, "bad argument #1 to 'issue' (table expected)")
    assert.has_error(function() token04.issue { app_id = APP, secret = 32, user_id = "u" } end,
      "bad argument #1 to 'issue' (secret must be a string or a streamctl.secret)")
  end)
end)
