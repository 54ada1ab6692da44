-- (not in the unit tier: it runs the openssl command, and that tier starts no process)
-- streamctl.core's signing against an independent oracle, the openssl
-- command (spec/helpers/openssl.lua), byte for byte; the providers'
-- published vectors are spec/base/01-core's.
local core = require "streamctl.core"
local openssl = require "spec.helpers.openssl"

describe("signing against an independent oracle (openssl CLI)", function()
  it("V1 signs METHOD&%2F&enc(query) with secret..'&'", function()
    local params = { Action = "ResumeLiveStream", ["Odd Name*"] = "v/1 ~!", Empty = "" }
    local sts = core.aliyun_string_to_sign_v1("POST", params)
    assert.equal("POST&%2F&Action%3DResumeLiveStream%26Empty%3D%26Odd%2520Name%252A%3Dv%252F1%2520~%2521", sts)
    assert.equal(openssl.hmac_sha1_base64("s3cr3t&", sts), core.aliyun_sign_v1("POST", params, "s3cr3t"))
  end)

  it("V1 with a kept secret (its keyed HMAC reused) signs as the oracle does, call after call", function()
    -- sizes on both sides of the small-array limit (32) and of the encoder's slices, arrays, odd bytes
    local secret = core.secret("s3cr3t")
    local long = string.rep("\226\130\172/ =&", 300)
    local cases = {
      {}, { A = "" }, { A = { "2", "1" }, B = long }, { ["Odd Name*"] = "v/1 ~!", Empty = "" },
    }
    for _, n in ipairs { 31, 32, 33, 90 } do
      local p = {}
      for i = 1, n do p[string.format("K%03d", i)] = string.rep("v", i) .. "/" .. i end
      p.List = { "z", "a" } -- two more entries, under one name
      cases[#cases + 1] = p
    end
    for round = 1, 2 do
      for i, params in ipairs(cases) do
        local sts = core.aliyun_string_to_sign_v1("POST", params)
        local sig, query = core.aliyun_sign_v1("POST", params, secret)
        assert.equal(openssl.hmac_sha1_base64("s3cr3t&", sts), sig, "case " .. i .. ", round " .. round)
        assert.equal(core.canonical_query(params), query, "case " .. i)
        assert.equal(sig, (core.aliyun_sign_v1("POST", params, "s3cr3t")))
        -- with a URL prefix: the whole URL, from either kind of secret
        local url = "https://live.aliyuncs.com/?" .. query .. (query ~= "" and "&" or "") .. "Signature="
          .. core.percent_encode(sig)
        for _, s in ipairs { secret, "s3cr3t" } do
          local sig2, url2 = core.aliyun_sign_v1("POST", params, s, "https://live.aliyuncs.com/?")
          assert.equal(sig, sig2)
          assert.equal(url, url2, "case " .. i)
        end
      end
    end
  end)

  it("V1 with a URL prefix gives the exact URL of the published example", function()
    local params = { Action = "DescribeRegions", Version = "2014-05-26", Format = "XML", AccessKeyId = "testid",
      SignatureMethod = "HMAC-SHA1", SignatureVersion = "1.0", SignatureNonce = "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
      Timestamp = "2016-02-23T12:46:24Z" }
    local sig, url = core.aliyun_sign_v1("GET", params, core.secret("testsecret"), "http://ecs.aliyuncs.com/?")
    assert.equal("OLeaidS1JvxuMvnyHOwuJ+uX5qY=", sig)
    assert.equal("http://ecs.aliyuncs.com/?AccessKeyId=testid&Action=DescribeRegions&Format=XML"
      .. "&SignatureMethod=HMAC-SHA1&SignatureNonce=3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf&SignatureVersion=1.0"
      .. "&Timestamp=2016-02-23T12%3A46%3A24Z&Version=2014-05-26&Signature=OLeaidS1JvxuMvnyHOwuJ%2BuX5qY%3D", url)
    assert.has_error(function() core.aliyun_sign_v1("GET", params, "s", {}) end)
  end)

  it("V1 handles secrets longer than the HMAC block and the stack buffer", function()
    local secret = string.rep("k", 1000)
    local params = { A = "1" }
    assert.equal(openssl.hmac_sha1_base64(secret .. "&", "GET&%2F&A%3D1"), core.aliyun_sign_v1("GET", params, secret))
  end)

  it("V3 builds the canonical request byte for byte", function()
    local canonical = table.concat({
      "POST", "/", "DomainName=a.example.com&StreamName=s%201",
      "content-type:application/json", "host:live.aliyuncs.com", "x-acs-action:ResumeLiveStream", "",
      "content-type;host;x-acs-action",
      openssl.sha256_hex("{}"),
    }, "\n")
    local hashed = openssl.sha256_hex(canonical)
    local expected_sig = openssl.hmac_sha256_hex("sk", "ACS3-HMAC-SHA256\n" .. hashed)
    -- a plain string secret, then a kept one twice (its keyed HMAC made once, then reused)
    for _, secret in ipairs { "sk", core.secret("sk") } do
      for _ = 1, 2 do
        local auth, sig, h, query = core.aliyun_sign_v3 {
          method = "POST", query = { StreamName = "s 1", DomainName = "a.example.com" },
          headers = { ["Content-Type"] = "application/json", Host = "live.aliyuncs.com",
                      ["x-acs-action"] = "ResumeLiveStream", ["User-Agent"] = "not signed" },
          body = "{}", access_key_id = "AK", access_key_secret = secret,
        }
        assert.equal(hashed, h)
        assert.equal(expected_sig, sig)
        assert.equal("ACS3-HMAC-SHA256 Credential=AK,SignedHeaders=content-type;host;x-acs-action,Signature="
          .. expected_sig, auth)
        assert.equal("DomainName=a.example.com&StreamName=s%201", query)
      end
    end
  end)

  it("V3 trims header values as JavaScript's trim does (the official utilities), and only at the ends", function()
    local function sig(value)
      local _, sg = core.aliyun_sign_v3 { method = "GET", headers = { host = "h", ["x-acs-action"] = value },
                                          access_key_id = "AK", access_key_secret = "sk" }
      return sg
    end
    local plain = sig("ResumeLiveStream")
    assert.equal(openssl.hmac_sha256_hex("sk", "ACS3-HMAC-SHA256\n" .. openssl.sha256_hex(table.concat({
      "GET", "/", "", "host:h", "x-acs-action:ResumeLiveStream", "", "host;x-acs-action", openssl.sha256_hex(""),
    }, "\n"))), plain)
    -- TAB LF VT FF CR SP, NBSP, U+1680, U+2000, U+200A, U+2028, U+2029, U+202F, U+205F, U+3000, U+FEFF
    local spaces = { "\t", "\n", "\v", "\f", "\r", " ", "\194\160", "\225\154\128", "\226\128\128",
                     "\226\128\138", "\226\128\168", "\226\128\169", "\226\128\175", "\226\129\159",
                     "\227\128\128", "\239\187\191" }
    for _, sp in ipairs(spaces) do
      assert.equal(plain, sig(sp .. "ResumeLiveStream" .. sp .. sp), ("%q"):format(sp))
    end
    -- not white space to JavaScript: U+200B, U+180E, and a lone byte of a sequence
    for _, other in ipairs { "\226\128\139", "\225\160\142", "\194", "\128" } do
      assert.not_equal(plain, sig("ResumeLiveStream" .. other), ("%q"):format(other))
    end
    assert.not_equal(plain, sig("Resume LiveStream")) -- inner spaces are kept
  end)

  it("V3 refuses a header name that is not a token (found by make fuzz: a ',' changed SignedHeaders)", function()
    for _, name in ipairs { "x-acs-dat0260,e", "x-acs-a;b", "x-acs-a b", "", "x-acs-\255" } do
      local ok, err = pcall(core.aliyun_sign_v3, { method = "GET", headers = { [name] = "v", host = "h" },
        access_key_id = "AK", access_key_secret = "sk" })
      assert.is_false(ok, name)
      assert.truthy(tostring(err):find("bad argument #1", 1, true), tostring(err))
      assert.truthy(tostring(err):find("headers: a header name is", 1, true), tostring(err))
    end
  end)

  it("V3 refuses the same header twice in different case", function()
    assert.has_error(function()
      core.aliyun_sign_v3 { method = "GET", headers = { Host = "a", host = "b" },
        access_key_id = "AK", access_key_secret = "sk" }
    end, "header 'host' given twice (names are case-insensitive)")
  end)

  it("ZEGO is md5(AppId..Nonce..Secret..Timestamp)", function()
    assert.equal(openssl.md5_hex("4294967295" .. "00ff" .. "sec" .. "0"), core.zego_sign(4294967295, "00ff", "sec", 0))
  end)

  it("ZEGO refuses AppIds and timestamps that are not unsigned integers", function()
    assert.has_error(function() core.zego_sign(-1, "n", "s", 1) end)
    assert.has_error(function() core.zego_sign(4294967296, "n", "s", 1) end)
    assert.has_error(function() core.zego_sign(1.5, "n", "s", 1) end)
    assert.has_error(function() core.zego_sign("12a", "n", "s", 1) end)
    assert.has_error(function() core.zego_sign(1, "n", "s", -5) end)
  end)

  it("sha256_hex", function()
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", core.sha256_hex(""))
    assert.equal(openssl.sha256_hex("abc\0def"), core.sha256_hex("abc\0def"))
  end)
end)
