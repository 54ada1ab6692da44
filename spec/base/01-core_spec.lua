-- tier: unit
-- streamctl.core: the providers' published vectors, percent-encoding, nonces,
-- time, and secret handling.
local core = require "streamctl.core"
local cjson = require "cjson"
local openssl = require "spec.helpers.openssl"
local quote = require("spec.helpers.process").quote

-- The providers' published examples, kept in the repository (a clone has
-- nothing beside it): spec/vectors/signing-vectors.json, a byte-for-byte copy
-- of the published file. spec/emulator/10-emulator_spec.lua reads the same path. Every
-- test below that needs them fails, naming the path, when the copy is missing,
-- unreadable or not whole; none is skipped.
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local VECTORS = ROOT .. "/spec/vectors/signing-vectors.json"

-- The vectors these specs rely on, by kind, in the file's order (by `source`).
local EXPECTED = {
  aliyun_rpc_v1 = {
    "Alibaba Cloud OpenAPI RPC signature (SignatureVersion 1.0, HMAC-SHA1) documentation example",
    "Alibaba Cloud SMS SendSms signature documentation example (non-ASCII value and a JSON value)",
  },
  aliyun_v3 = { "Alibaba Cloud V3 request signature (ACS3-HMAC-SHA256) documentation example" },
  zego_v2 = { "ZEGOCLOUD Server API signature documentation, Go sample comment" },
}

-- The decoded file, or nil and why (naming the path). Never raises, so the
-- tests are all defined, and each one fails on its own.
local function read_vectors()
  local f, why = io.open(VECTORS, "rb")
  if not f then return nil, "the published signing vectors are missing: " .. tostring(why) end
  local text = f:read("*a")
  f:close()
  local ok, v = pcall(cjson.decode, text)
  if not ok or type(v) ~= "table" then
    return nil, "the published signing vectors in " .. VECTORS .. " are not whole JSON (truncated?): " .. tostring(v)
  end
  return v
end

describe("published signing vectors", function()
  local V, why = read_vectors()

  -- The i-th vector of a kind; fails the calling test when it is not there.
  local function vector(kind, i)
    assert(V, why)
    local v = type(V[kind]) == "table" and V[kind][i]
    assert(type(v) == "table", ("%s has no %s vector #%d (truncated?)"):format(VECTORS, kind, i))
    return v
  end

  it("are the repository's own copy, the file every spec reads", function()
    -- the root is this repository (this spec is there), and the copy is inside it
    local me = io.open(ROOT .. "/spec/base/01-core_spec.lua", "rb")
    assert(me, "STREAMCTL_ROOT (" .. ROOT .. ") is not the repository holding spec/base/01-core_spec.lua")
    me:close()
    assert(V, why)
    -- every spec that names the vectors file names this copy, and nothing outside the clone
    local OUTSIDE = ".." .. "/shared" -- where the vectors once were, outside the repository
    local ls = assert(io.popen("ls " .. quote(ROOT .. "/spec") .. "/*/*_spec.lua"))
    local users = {}
    for file in ls:lines() do
      local f = assert(io.open(file, "rb"))
      local text = f:read("*a")
      f:close()
      local name = file:match("([^/]+)$")
      assert.is_nil(text:find(OUTSIDE, 1, true), name .. " reads something beside the clone")
      for at in text:gmatch("()signing%-vectors%.json") do
        assert.equal("spec/vectors/", text:sub(at - 13, at - 1), name .. " reads another vectors file")
        users[name] = true
      end
    end
    ls:close()
    assert.is_true(users["01-core_spec.lua"])
    assert.is_true(users["10-emulator_spec.lua"])
  end)

  it("hold exactly the vectors the specs rely on, whole", function()
    assert(V, why)
    local keys = {}
    for k in pairs(V) do keys[#keys + 1] = k end
    table.sort(keys)
    assert.same({ "about", "aliyun_rpc_v1", "aliyun_v3", "zego_v2" }, keys)
    assert.is_string(V.about)
    for kind, sources in pairs(EXPECTED) do
      local got = {}
      for i, v in ipairs(V[kind]) do got[i] = v.source end
      assert.same(sources, got, VECTORS .. ": the " .. kind .. " vectors")
      for i in ipairs(sources) do
        local v = vector(kind, i)
        assert.is_string(v.signature, kind .. " #" .. i .. " signature")
        assert.truthy(#v.signature > 0, kind .. " #" .. i .. " signature")
      end
    end
    assert.equal(2, #V.aliyun_rpc_v1)
    assert.equal(1, #V.aliyun_v3)
    assert.equal(1, #V.zego_v2)
  end)

  for i, source in ipairs(EXPECTED.aliyun_rpc_v1) do
    it("Aliyun RPC V1 #" .. i .. ": " .. source, function()
      local v = vector("aliyun_rpc_v1", i)
      if v.string_to_sign then
        assert.equal(v.string_to_sign, core.aliyun_string_to_sign_v1(v.method, v.params))
      end
      assert.equal(v.signature, core.aliyun_sign_v1(v.method, v.params, v.access_key_secret))
      assert.equal(v.signature, core.aliyun_sign_v1(v.method, v.params, core.secret(v.access_key_secret)))
    end)
  end

  it("Aliyun V3 (ACS3-HMAC-SHA256)", function()
    local v = vector("aliyun_v3", 1)
    local auth, sig, hashed = core.aliyun_sign_v3 {
      method = v.method, path = v.path, query = v.query, headers = v.headers, body = v.body,
      access_key_id = v.access_key_id, access_key_secret = v.access_key_secret,
    }
    assert.equal(v.hashed_canonical_request, hashed)
    assert.equal(v.signature, sig)
    assert.equal(v.authorization, auth)
    -- a streamctl.secret's kept contexts sign the same, call after call, with
    -- and without a body (the empty body's hash is written out in the C)
    local secret = core.secret(v.access_key_secret)
    for _, body in ipairs { v.body, "a body", "" , v.body } do
      local req = { method = v.method, path = v.path, query = v.query, headers = v.headers, body = body,
                    access_key_id = v.access_key_id, access_key_secret = v.access_key_secret }
      local a1, s1, h1 = core.aliyun_sign_v3(req)
      req.access_key_secret = secret
      local a2, s2, h2 = core.aliyun_sign_v3(req)
      assert.same({ a1, s1, h1 }, { a2, s2, h2 })
      if body == v.body then assert.equal(v.signature, s2) end
    end
  end)

  it("Aliyun V3 ignores header-name case and value padding, as the spec says", function()
    local v = vector("aliyun_v3", 1)
    local headers = {}
    for k, val in pairs(v.headers) do headers[k:upper()] = "  " .. val .. "\t" end
    local _, sig = core.aliyun_sign_v3 {
      method = v.method, query = v.query, headers = headers,
      access_key_id = v.access_key_id, access_key_secret = core.secret(v.access_key_secret),
    }
    assert.equal(v.signature, sig)
  end)

  it("ZEGO signature 2.0", function()
    local z = vector("zego_v2", 1)
    assert.equal(z.signature, core.zego_sign(z.app_id, z.signature_nonce, z.server_secret, z.timestamp))
    assert.equal(z.signature, core.zego_sign(string.format("%d", z.app_id), z.signature_nonce,
      core.secret(z.server_secret), string.format("%d", z.timestamp)))
    -- a streamctl.secret's context, used again and again, signs each input afresh
    local secret = core.secret(z.server_secret)
    for i = 1, 3 do
      assert.equal(openssl.md5_hex("1234" .. "n" .. i .. z.server_secret .. "99"), core.zego_sign(1234, "n" .. i, secret, 99))
      assert.equal(z.signature, core.zego_sign(z.app_id, z.signature_nonce, secret, z.timestamp))
    end
  end)
end)

describe("percent_encode", function()
  -- The rule from PROVIDERS.md, written out independently of the C code.
  local function reference(s)
    return (s:gsub("[^A-Za-z0-9%-_.~]", function(c) return string.format("%%%02X", c:byte()) end))
  end

  it("encodes all 256 byte values by the providers' rule", function()
    for b = 0, 255 do
      local c = string.char(b)
      assert.equal(reference(c), core.percent_encode(c))
    end
    local all = {}
    for b = 0, 255 do all[#all + 1] = string.char(b) end
    all = table.concat(all)
    assert.equal(reference(all), core.percent_encode(all))
    assert.equal(66 + 3 * (256 - 66), #core.percent_encode(all))
  end)

  it("keeps exactly A-Z a-z 0-9 - _ . ~", function()
    local keep = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~"
    assert.equal(keep, core.percent_encode(keep))
  end)

  it("gets the characters other encoders get wrong", function()
    assert.equal("%20", core.percent_encode(" "))
    assert.equal("%2A", core.percent_encode("*"))
    assert.equal("~", core.percent_encode("~"))
    assert.equal("%2F", core.percent_encode("/"))
    assert.equal("%21%27%28%29", core.percent_encode("!'()"))
    assert.equal("%2B", core.percent_encode("+"))
    assert.equal("a%3Db%26c", core.percent_encode("a=b&c"))
  end)

  it("encodes UTF-8 bytes with upper-case hex", function()
    assert.equal("%E9%98%BF%E9%87%8C%E4%BA%91", core.percent_encode("阿里云"))
    assert.equal("%F0%9F%8E%A5", core.percent_encode("\240\159\142\165"))
  end)

  it("handles empty strings and embedded NUL", function()
    assert.equal("", core.percent_encode(""))
    assert.equal("a%00b", core.percent_encode("a\0b"))
  end)
end)

describe("canonical_query", function()
  it("sorts by raw name bytes, not by the joined k=v", function()
    -- "A=2" < "A1=1" by joined string would differ from name order A < A1.
    assert.equal("A=2&A1=1&B=", core.canonical_query { A1 = "1", A = "2", B = "" })
    assert.equal("Z=1&a=2", core.canonical_query { a = "2", Z = "1" })
  end)

  it("repeats array names in the given order", function()
    assert.equal("S%5B%5D=b&S%5B%5D=a&T=x", core.canonical_query { ["S[]"] = { "b", "a" }, T = "x" })
  end)

  it("refuses non-string values", function()
    assert.has_error(function() core.canonical_query { A = 1 } end,
      "parameter 'A' must be a string or an array of strings (got number)")
    assert.has_error(function() core.canonical_query { A = { "x", 2 } } end,
      "parameter 'A' item 2 must be a string (got number)")
  end)
end)

describe("nonces", function()
  it("uuid4 is a version-4 RFC 4122 UUID and never repeats", function()
    local seen = {}
    for _ = 1, 1000 do
      local u = core.uuid4()
      assert.truthy(u:match("^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"), u)
      assert.is_nil(seen[u])
      seen[u] = true
    end
  end)

  it("nonces from the pool never repeat across many refills, whatever sizes are asked", function()
    local seen = {}
    for i = 1, 5000 do
      local v = (i % 3 == 0) and core.random_hex(256) or core.uuid4()
      assert.is_nil(seen[v])
      seen[v] = true
    end
  end)

  -- A pool filled before a fork must not hand the same bytes to parent and
  -- child (nginx's master loads streamctl, then forks its workers). Only
  -- LuaJIT can fork from a spec (its FFI); PUC Lua runs the same C code.
  local ffi_ok, ffi = pcall(require, "ffi")
  local fork_it = ffi_ok and it or pending
  fork_it("nonces differ between a parent and a child forked after the pool was filled", function()
    ffi.cdef [[ int fork(void); int waitpid(int pid, int *status, int options); void _exit(int status); ]]
    local path = os.tmpname()
    core.uuid4() -- fills the pool
    local pid = ffi.C.fork()
    assert.is_true(pid >= 0)
    if pid == 0 then
      local f = io.open(path, "w")
      f:write(core.uuid4(), "\n", core.random_hex(16), "\n")
      f:close()
      ffi.C._exit(0)
    end
    local mine = { core.uuid4(), core.random_hex(16) }
    ffi.C.waitpid(pid, nil, 0)
    local f = assert(io.open(path))
    local theirs = { f:read("*l"), f:read("*l") }
    f:close()
    os.remove(path)
    assert.equal(36, #theirs[1])
    assert.not_equal(mine[1], theirs[1])
    assert.not_equal(mine[2], theirs[2])
  end)

  it("random_id gives an id of 2n lower-case hex characters, never all zeros", function()
    assert.truthy(core.random_id(16):match("^[0-9a-f]+$"))
    assert.equal(32, #core.random_id(16))
    assert.not_equal(core.random_id(8), core.random_id(8))
    -- (one byte: a zero would come once in 256 draws; 4,000 draws give none)
    for _ = 1, 4000 do assert.not_equal("00", core.random_id(1)) end
    assert.has_error(function() core.random_id(0) end)
    assert.has_error(function() core.random_id(33) end)
  end)

  it("random_id(n, m) gives two ids, of n and of m bytes", function()
    local trace_id, span_id, extra = core.random_id(16, 8)
    assert.truthy(trace_id:match("^" .. ("[0-9a-f]"):rep(32) .. "$"))
    assert.truthy(span_id:match("^" .. ("[0-9a-f]"):rep(16) .. "$"))
    assert.is_nil(extra)
    assert.not_equal(trace_id:sub(1, 16), span_id)
    assert.equal(1, select("#", core.random_id(16, nil)))
    for _ = 1, 4000 do
      local a, b = core.random_id(1, 1)
      assert.not_equal("00", a)
      assert.not_equal("00", b)
    end
    assert.has_error(function() core.random_id(16, 0) end, "bad argument #2 to 'random_id' (nbytes must be in 1..32)")
    assert.has_error(function() core.random_id(16, 33) end, "bad argument #2 to 'random_id' (nbytes must be in 1..32)")
  end)

  it("random_hex gives 2n lower-case hex characters", function()
    assert.truthy(core.random_hex(8):match("^[0-9a-f]+$"))
    assert.equal(16, #core.random_hex(8))
    assert.equal(512, #core.random_hex(256))
    assert.not_equal(core.random_hex(8), core.random_hex(8))
    assert.has_error(function() core.random_hex(0) end)
    assert.has_error(function() core.random_hex(257) end)
  end)
end)

describe("time", function()
  it("formats UTC timestamps", function()
    assert.equal("1970-01-01T00:00:00Z", core.utc_timestamp(0))
    assert.equal("2016-02-23T12:46:24Z", core.utc_timestamp(1456231584))
    assert.equal("2024-02-29T23:59:59Z", core.utc_timestamp(1709251199))
    assert.equal("2021-03-08T07:02:23Z", core.utc_timestamp(1615186943.999))
    assert.equal("9999-12-31T23:59:59Z", core.utc_timestamp(253402300799))
    assert.has_error(function() core.utc_timestamp(-1) end)
  end)

  it("parses them back, and only valid ones", function()
    assert.equal(1456231584, core.parse_utc_timestamp("2016-02-23T12:46:24Z"))
    assert.equal(1709251199, core.parse_utc_timestamp("2024-02-29T23:59:59Z"))
    for t = 0, 4102444800, 86399 * 97 do
      assert.equal(t, core.parse_utc_timestamp(core.utc_timestamp(t)))
    end
    local bad = { "2023-02-29T00:00:00Z", "2023-13-01T00:00:00Z", "2023-01-01T24:00:00Z",
                  "2023-01-01 00:00:00Z", "2023-01-01T00:00:00", "2023-01-01T00:00:00.5Z",
                  "1969-12-31T23:59:59Z", "" }
    for _, s in ipairs(bad) do
      local t, err = core.parse_utc_timestamp(s)
      assert.is_nil(t, s)
      assert.is_string(err)
    end
  end)

  it("has a wall clock and a monotonic clock", function()
    assert.is_true(math.abs(core.now() - os.time()) <= 2)
    local a = core.monotonic()
    assert.is_true(core.monotonic() >= a)
  end)
end)

describe("secrets", function()
  it("never show their bytes", function()
    local s = core.secret("top-secret-value")
    assert.equal("streamctl.secret(redacted)", tostring(s))
    assert.equal(16, #s)
    assert.is_false(getmetatable(s))
  end)

  it("are told apart from everything else by is_secret", function()
    assert.is_true(core.is_secret(core.secret("x")))
    for _, v in ipairs { "x", 1, {}, io.stdout, false } do assert.is_false(core.is_secret(v)) end
    assert.is_false(core.is_secret())
  end)

  it("are refused where a secret is expected if they are neither string nor secret", function()
    assert.has_error(function() core.aliyun_sign_v1("GET", {}, 42) end)
    assert.has_error(function() core.aliyun_sign_v1("GET", {}, {}) end)
  end)

  it("survive collection cycles", function()
    for _ = 1, 1000 do core.secret(string.rep("x", 100)) end
    collectgarbage()
    collectgarbage()
    assert.equal(3, #core.secret("abc"))
  end)
end)

describe("argument checks", function()
  it("rejects bad HTTP methods", function()
    assert.has_error(function() core.aliyun_string_to_sign_v1("get", {}) end)
    assert.has_error(function() core.aliyun_string_to_sign_v1("", {}) end)
  end)

  it("rejects a V3 path that does not start with /", function()
    assert.has_error(function()
      core.aliyun_sign_v3 { method = "GET", path = "x", headers = {}, access_key_id = "a", access_key_secret = "b" }
    end)
  end)
end)

describe("module", function()
  it("keeps no version of its own (src/streamctl/version.lua holds it, once)", function()
    assert.is_nil(core._VERSION)
  end)
end)

describe("what a list read as it goes needs", function()
  it("fingerprint_set: each name once, its size, repeats told", function()
    local set = core.fingerprint_set()
    assert.equal(0, #set)
    assert.is_true(set:add("a"))
    assert.is_true(set:add("b"))
    assert.is_false(set:add("a"))
    assert.is_true(set:add(""))
    assert.equal(3, #set)
    assert.equal("streamctl.fingerprint_set (3 names)", tostring(set))
    -- grown by doubling past 0.7 of 1,024 slots: 8 bytes a slot
    local before = set:bytes()
    for i = 1, 2000 do set:add("name-" .. i) end
    assert.equal(2003, #set)
    assert.equal(before * 4 - (before - 1024 * 8) * 3, set:bytes())
    for i = 1, 2000 do assert.is_false(set:add("name-" .. i)) end
    assert.has_error(function() set:add(1 < 2) end)
    assert.has_error(function() setmetatable(set, {}) end)
  end)

  it("sha256_stream: SHA-256 of the bytes given piece by piece (FIPS 180-2's vectors), once", function()
    local h = core.sha256_stream()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", h:hex())
    assert.has_error(function() h:hex() end, "sha256_stream: hex() called twice")
    assert.has_error(function() h:update("x") end, "sha256_stream: updated after hex()")
    h = core.sha256_stream()
    assert.equal(h, h:update("a"))
    h:update(""):update("bc")
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", h:hex())
    h = core.sha256_stream()
    local text = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
    for i = 1, #text do h:update(text:sub(i, i)) end
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", h:hex())
    assert.equal(core.sha256_hex(text), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    assert.has_error(function() core.sha256_stream():update({}) end)
  end)
end)
