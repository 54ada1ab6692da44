-- sanitizers: none (the emulator: its code runs in nginx, not in this process)
-- The emulator's launcher and its signature verifiers, proven independently:
-- requests are built by hand (luasocket), signed with the providers' published
-- vectors or with the openssl CLI (spec/helpers/emulator.lua), never with
-- streamctl's core and never with the emulator's own code.

local emu = require "spec.helpers.emulator"
local cjson = require "cjson"


-- The providers' published examples (spec/vectors/signing-vectors.json), as
-- literals here and cross-checked against that file, which must be present.
local V1 = {
  secret = "testsecret",
  params = {
    AccessKeyId = "testid",
    Action = "DescribeRegions",
    Format = "XML",
    SignatureMethod = "HMAC-SHA1",
    SignatureNonce = "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    SignatureVersion = "1.0",
    Timestamp = "2016-02-23T12:46:24Z",
    Version = "2014-05-26",
  },
  time = 1456231584,
  string_to_sign = "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26"
    .. "SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26"
    .. "SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26",
  signature = "OLeaidS1JvxuMvnyHOwuJ+uX5qY=",
}

local V1_SMS = {
  secret = "testSecret",
  params = {
    AccessKeyId = "testId",
    Action = "SendSms",
    Format = "XML",
    OutId = "123",
    PhoneNumbers = "15300000001",
    RegionId = "cn-hangzhou",
    SignName = "阿里云短信测试专用",
    SignatureMethod = "HMAC-SHA1",
    SignatureNonce = "45e25e9b-0a6f-4070-8c85-2956eda1b466",
    SignatureVersion = "1.0",
    TemplateCode = "SMS_71390007",
    TemplateParam = "{\"customer\":\"test\"}",
    Timestamp = "2017-07-12T02:42:19Z",
    Version = "2017-05-25",
  },
  time = 1499827339,
  signature = "zJDF+Lrzhj/ThnlvIToysFRq6t4=",
}

local V3 = {
  key = "YourAccessKeyId",
  secret = "YourAccessKeySecret",
  query = "ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd&RegionId=cn-shanghai",
  headers = {
    host = "ecs.cn-shanghai.aliyuncs.com",
    ["x-acs-action"] = "RunInstances",
    ["x-acs-content-sha256"] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ["x-acs-date"] = "2023-10-26T10:22:32Z",
    ["x-acs-signature-nonce"] = "3156853299f313e23d1673dc12e1703d",
    ["x-acs-version"] = "2014-05-26",
  },
  time = 1698315752,
  hashed_canonical_request = "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259",
  signature = "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0",
  signed_headers = "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version",
}

local ZEGO = {
  app_id = "12345",
  nonce = "4fd24687296dd9f3",
  secret = "9193cc662a4c0ec135ec71fb57194b38",
  timestamp = 1615186943,
  signature = "43e5cfcca828314675f91b001390566a",
}

local CONFIG = {
  aliyun = {
    accounts = {
      testid = "testsecret",
      testId = "testSecret",
      YourAccessKeyId = "YourAccessKeySecret",
      ["STS.emulator"] = { secret = "sts-secret", security_token = "sts-token-value" },
    },
  },
  zego = { apps = { ["12345"] = ZEGO.secret } },
}

local function decode(text)
  local ok, v = pcall(cjson.decode, text)
  return ok and v or nil
end

local function v1_query(params, signature)
  return emu.query(params) .. "&Signature=" .. emu.pct(signature)
end

local function flip_last_char(s)
  local last = s:sub(-1)
  return s:sub(1, -2) .. (last == "A" and "B" or "A")
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do
    c[k] = v
  end
  return c
end

describe("streamctl emulator", function()
  local server

  lazy_setup(function()
    server = emu.start({ config = CONFIG })
  end)

  lazy_teardown(function()
    if server then
      server:stop()
    end
  end)

  before_each(function()
    server:reset()
  end)

  local function aliyun(method, query, opts)
    opts = opts or {}
    local status, body, headers, err = server:request({
      method = method, provider = "aliyun", path = "/?" .. query,
      headers = opts.headers, body = opts.body,
    })
    return status, body, headers, err
  end

  local function zego(query)
    local status, body, headers = server:request({ provider = "zego", path = "/?" .. query })
    return status, decode(body), headers, body
  end

  describe("launcher", function()
    it("reports running, refuses a second start politely, and knows its commands", function()
      local ok, out = emu.launcher("status --dir '" .. server.dir .. "'")
      assert.is_true(ok)
      assert.matches("running", out, 1, true)
      assert.matches("http://127.0.0.1:" .. server.ports.aliyun, out, 1, true)
      assert.matches(server.dir .. "/ca.pem", out, 1, true)

      ok, out = emu.launcher("start --dir '" .. server.dir .. "'")
      assert.is_true(ok)
      assert.matches("already running", out, 1, true)

      ok, out = emu.launcher("--help")
      assert.is_true(ok)
      assert.matches("streamctl-emulator <command>", out, 1, true)

      local _, _, code = emu.launcher("frobnicate")
      assert.are.equal(2, code)
    end)

    it("says stopped with exit status 3 for a directory without a server", function()
      local dir = os.tmpname()
      os.remove(dir)
      local ok, out, code = emu.launcher("status --dir '" .. dir .. "'")
      assert.is_false(ok)
      assert.are.equal(3, code)
      assert.matches("stopped", out, 1, true)
    end)

    it("writes its files into DIR and listens on 127.0.0.1 only", function()
      local f = assert(io.open(server.dir .. "/nginx.conf"))
      local conf = f:read("*a")
      f:close()
      local listens = 0
      for addr in conf:gmatch("listen%s+([^;%s]+)") do
        listens = listens + 1
        assert.matches("^127%.0%.0%.1:%d+$", addr)
      end
      assert.are.equal(4, listens)
      assert.matches("worker_processes 1;", conf, 1, true)
      for _, name in ipairs({ "ca.pem", "server.pem", "error.log", "nginx.pid", "endpoints.env" }) do
        assert.is_truthy(io.open(server.dir .. "/" .. name), name)
      end
    end)

    it("endpoints.env, sourced, exports the names the quick starts read (and keeps the old ones)", function()
      local p = io.popen("env -i /bin/sh -c '. \"$1\" && env && echo \"old=$STREAMCTL_EMULATOR_ALIYUN_TLS_URL\"' sh '"
        .. server.dir .. "/endpoints.env'")
      local out = p:read("*a")
      p:close()
      local got = {}
      for k, v in out:gmatch("([%w_]+)=([^\n]*)") do
        got[k] = v
      end
      assert.are.same({ server.aliyun_tls_url, server.zego_tls_url, server.ca_file, server.aliyun_tls_url },
        { got.STREAMCTL_ALIYUN_ENDPOINT, got.STREAMCTL_ZEGO_ENDPOINT, got.STREAMCTL_CA_FILE, got.old })
    end)

    it("serves HTTPS with a certificate the generated CA verifies for 127.0.0.1 and localhost", function()
      for _, check in ipairs({ "-verify_ip 127.0.0.1", "-verify_hostname localhost" }) do
        local p = io.popen("echo | openssl s_client -connect 127.0.0.1:" .. server.ports.aliyun_tls
          .. " -CAfile '" .. server.ca_file .. "' -verify_return_error " .. check .. " 2>&1")
        local out = p:read("*a")
        p:close()
        assert.matches("Verify return code: 0 (ok)", out, 1, true)
      end
      -- and an HTTPS request through luasec, verifying the peer with the CA
      local https = require "ssl.https"
      local ltn12 = require "ltn12"
      local chunks = {}
      local ok, status = https.request({
        url = server.zego_tls_url .. "/_emulator/health", sink = ltn12.sink.table(chunks),
        cafile = server.ca_file, verify = "peer", protocol = "any",
      })
      assert.are.equal(1, ok)
      assert.are.equal(200, status)
      assert.are.equal("zego", cjson.decode(table.concat(chunks)).provider)
      -- without the CA the same request fails verification
      local ok2 = https.request({
        url = server.zego_tls_url .. "/_emulator/health", sink = ltn12.sink.table({}),
        cafile = "/dev/null", verify = "peer", protocol = "any",
      })
      assert.is_nil(ok2)
    end)
  end)

  describe("control endpoints", function()
    it("pins, shifts and resets the clock, and every response's Date follows it", function()
      local c = server:clock({ now = V1.time })
      assert.are.same({ now = V1.time, pinned = true, offset = 0 }, c)
      local status, _, headers = aliyun("GET", "Action=Nothing")
      assert.are.equal(400, status)
      assert.are.equal("Tue, 23 Feb 2016 12:46:24 GMT", headers.date)
      -- (the emulator's now, within the request's: one wall clock, read before and after it here)
      local before = os.time()
      c = server:clock({ offset = -86400 })
      local after = os.time() + 1
      assert.is_false(c.pinned)
      assert.is_true(c.now >= before - 86400 and c.now < after - 86400, tostring(c.now))
      before = os.time()
      c = server:clock({})
      after = os.time() + 1
      assert.is_true(c.now >= before and c.now < after, tostring(c.now))
      local _, code = server:control("POST", "clock", { now = "soon" })
      assert.are.equal(400, code)
    end)

    it("answers 404 for unknown endpoints and 405 for wrong methods", function()
      local v, code = server:control("GET", "nope")
      assert.are.equal(404, code)
      assert.matches("unknown endpoint", v.error, 1, true)
      assert.are.equal(405, select(2, server:control("GET", "reset")))
      v, code = server:control("POST", "faults", { kind = "explode" })
      assert.are.equal(400, code)
      assert.matches("kind must be", v.error, 1, true)
    end)

    it("shows the configured accounts but never their secrets", function()
      local status, body = server:request({ provider = "zego", path = "/_emulator/config" })
      assert.are.equal(200, status)
      local v = cjson.decode(body)
      assert.are.same({ "LTAIemulatorKey", "STS.emulator", "YourAccessKeyId", "testId", "testid" },
        v.aliyun.accounts)
      assert.are.same({ "12345", "1234567890" }, v.zego.apps)
      assert.are.equal(30, v.aliyun.qps.ResumeLiveStream)
      assert.is_nil(body:find("emulator-secret", 1, true))
      assert.is_nil(body:find("testsecret", 1, true))
      assert.is_nil(body:find("0123456789abcdef0123456789abcdef", 1, true))
    end)
  end)

  describe("Aliyun signature V1", function()
    before_each(function()
      server:clock({ now = V1.time })
    end)

    it("accepts the published vector (then answers that DescribeRegions is no Live API)", function()
      local status, body, headers = aliyun("GET", v1_query(V1.params, V1.signature))
      assert.are.equal(404, status)
      assert.matches("<Code>InvalidApi.NotFound</Code>", body, 1, true)
      assert.matches("^<%?xml", body)
      assert.are.equal("text/xml;charset=utf-8", headers["content-type"])
      local entries = server:log()
      assert.are.equal(1, #entries)
      assert.are.equal("DescribeRegions", entries[1].action)
      assert.are.equal("***", entries[1].params.Signature)
    end)

    it("accepts the published non-ASCII/JSON vector", function()
      server:clock({ now = V1_SMS.time })
      local status, body = aliyun("GET", v1_query(V1_SMS.params, V1_SMS.signature))
      assert.are.equal(404, status)
      assert.matches("<Code>InvalidApi.NotFound</Code>", body, 1, true)
    end)

    it("shows the published string to sign when one byte of the signature is wrong", function()
      local status, body = aliyun("GET",
        v1_query(V1.params, V1.signature:sub(1, 5) .. "X" .. V1.signature:sub(7)))
      assert.are.equal(400, status)
      assert.matches("<Code>SignatureDoesNotMatch</Code>", body, 1, true)
      local json_params = copy(V1.params)
      json_params.Format = "JSON"
      status, body = aliyun("GET", v1_query(json_params, V1.signature))
      assert.are.equal(400, status)
      local err = cjson.decode(body)
      assert.are.equal("SignatureDoesNotMatch", err.Code)
      assert.are.equal("Specified signature is not matched with our calculation. server string to sign is:"
        .. V1.string_to_sign:gsub("Format%%3DXML", "Format%%3DJSON"), err.Message)
      assert.are.equal("live.aliyuncs.com", err.HostId)
      assert.is_string(err.RequestId)
      assert.matches("SignatureDoesNotMatch", err.Recommend, 1, true)
    end)

    it("rejects a changed parameter, a wrong secret, another method", function()
      local changed = copy(V1.params)
      changed.Version = "2014-05-27"
      local status, body = aliyun("GET", v1_query(changed, V1.signature))
      assert.are.equal(400, status)
      assert.matches("<Code>SignatureDoesNotMatch</Code>", body, 1, true)

      local wrong = emu.v1_signature("GET", V1.params, "testsecreT")
      status, body = aliyun("GET", v1_query(V1.params, wrong))
      assert.are.equal(400, status)
      assert.matches("<Code>SignatureDoesNotMatch</Code>", body, 1, true)

      -- the GET signature sent with POST: the server signs "POST&..."
      status, body = aliyun("POST", v1_query(V1.params, V1.signature))
      assert.are.equal(400, status)
      assert.matches("server string to sign is:POST&amp;%2F&amp;AccessKeyId", body, 1, true)
    end)

    it("takes parameters from a form body too, signed with the method received", function()
      local sig = emu.v1_signature("POST", V1.params, V1.secret)
      assert.are.equal(sig, emu.hmac_sha1_base64("testsecret&", "POST" .. V1.string_to_sign:sub(4)))
      -- all in the body
      local status, body = aliyun("POST", "", {
        headers = { ["content-type"] = "application/x-www-form-urlencoded" },
        body = v1_query(V1.params, sig),
      })
      assert.are.equal(404, status)
      assert.matches("InvalidApi.NotFound", body, 1, true)
      server:reset()
      server:clock({ now = V1.time })
      -- split between query and body
      local q = {}
      local b = {}
      for k, v in pairs(V1.params) do
        if k < "SignatureNonce" then
          q[k] = v
        else
          b[k] = v
        end
      end
      status, body = aliyun("POST", emu.query(q), {
        headers = { ["content-type"] = "application/x-www-form-urlencoded; charset=UTF-8" },
        body = emu.query(b) .. "&Signature=" .. emu.pct(sig),
      })
      assert.are.equal(404, status)
      assert.matches("InvalidApi.NotFound", body, 1, true)
    end)

    it("reads an unencoded + in the signature as a space, as form encoding says", function()
      local raw = emu.query(V1.params) .. "&Signature=" .. V1.signature:gsub("=", "%%3D")
      local status, body = aliyun("GET", raw)
      assert.are.equal(400, status)
      assert.matches("<Code>SignatureDoesNotMatch</Code>", body, 1, true)
    end)

    it("rejects a stale timestamp beyond 15 minutes, in both directions", function()
      server:clock({ now = V1.time + 901 })
      local status, body = aliyun("GET", v1_query(V1.params, V1.signature))
      assert.are.equal(400, status)
      assert.matches("<Code>InvalidTimeStamp.Expired</Code>", body, 1, true)
      server:clock({ now = V1.time - 901 })
      status, body = aliyun("GET", v1_query(V1.params, V1.signature))
      assert.are.equal(400, status)
      assert.matches("<Code>InvalidTimeStamp.Expired</Code>", body, 1, true)
      server:clock({ now = V1.time + 900 })
      status, body = aliyun("GET", v1_query(V1.params, V1.signature))
      assert.are.equal(404, status)
      assert.matches("InvalidApi.NotFound", body, 1, true)
    end)

    it("rejects a reused nonce", function()
      local q = v1_query(V1.params, V1.signature)
      assert.are.equal(404, (aliyun("GET", q)))
      local status, body = aliyun("GET", q)
      assert.are.equal(400, status)
      assert.matches("<Code>SignatureNonceUsed</Code>", body, 1, true)
    end)

    it("rejects an unknown AccessKeyId with 404", function()
      local p = copy(V1.params)
      p.AccessKeyId = "LTAInobody"
      local status, body = aliyun("GET", v1_query(p, emu.v1_signature("GET", p, V1.secret)))
      assert.are.equal(404, status)
      assert.matches("<Code>InvalidAccessKeyId.NotFound</Code>", body, 1, true)
    end)

    it("checks the common parameters first", function()
      local cases = {
        { "Format", "YAML", 400, "InvalidParameter.Format" },
        { "SignatureMethod", "HMAC-SHA256", 400, "InvalidSignatureMethod" },
        { "SignatureVersion", "2.0", 400, "InvalidSignatureVersion" },
        { "Timestamp", "2016-02-23T12:46:24.000Z", 400, "InvalidTimeStamp.Format" },
        { "SignatureNonce", nil, 400, "MissingSignatureNonce" },
        { "Action", nil, 400, "MissingAction" },
      }
      for _, case in ipairs(cases) do
        local p = copy(V1.params)
        p.Format = "JSON"
        p[case[1]] = case[2]
        local status, body = aliyun("GET", v1_query(p, emu.v1_signature("GET", p, V1.secret)))
        assert.are.equal(case[3], status, case[1])
        assert.are.equal(case[4], cjson.decode(body).Code, case[1])
      end
      local status, body = aliyun("PUT", emu.query(V1.params))
      assert.are.equal(400, status)
      assert.matches("UnsupportedHTTPMethod", body, 1, true)
    end)

    it("signs and accepts a Live call built by hand with the default account", function()
      server:clock({})
      local q = emu.v1_request({ action = "DescribeLiveStreamsBlockList", method = "GET",
        params = { DomainName = "demo.example.com" } })
      local status, body, headers = aliyun("GET", q)
      assert.are.equal(200, status)
      local v = cjson.decode(body)
      assert.are.equal(headers["x-acs-request-id"], v.RequestId)
      assert.are.equal("demo.example.com", v.DomainName)
      assert.are.equal("application/json;charset=utf-8", headers["content-type"])
      assert.matches('"StreamUrl":[]', body, 1, true)
    end)

    it("requires an STS account's security token, and never logs it", function()
      server:clock({})
      local base = { action = "DescribeLiveStreamsBlockList", method = "GET", key = "STS.emulator",
        secret = "sts-secret", params = { DomainName = "d.example.com" } }
      local status, body = aliyun("GET", emu.v1_request(base))
      assert.are.equal(400, status)
      assert.are.equal("MissingSecurityToken", cjson.decode(body).Code)
      base.params.SecurityToken = "not-the-token"
      status, body = aliyun("GET", emu.v1_request(base))
      assert.are.equal(400, status)
      assert.are.equal("InvalidSecurityToken.MismatchWithAccessKey", cjson.decode(body).Code)
      base.params.SecurityToken = "sts-token-value"
      status = aliyun("GET", emu.v1_request(base))
      assert.are.equal(200, status)
      local _, raw = server:request({ path = "/_emulator/log" })
      assert.is_nil(raw:find("sts-token-value", 1, true))
      assert.is_nil(raw:find("sts-secret", 1, true))
      assert.are.equal("***", cjson.decode(raw).entries[3].params.SecurityToken)
    end)

    it("never logs the token where a message or a canonical request quotes it", function()
      server:clock({})
      server:reset()
      -- V1 with a wrong signature: the answer quotes the string to sign (token inside, twice
      -- encoded), as the service does; the log does not.
      local token = "sts/token+value=="
      local base = { action = "DescribeLiveStreamsBlockList", method = "GET", key = "STS.emulator",
        secret = "not-the-secret", params = { DomainName = "d.example.com", SecurityToken = token } }
      local status, body = aliyun("GET", emu.v1_request(base))
      assert.are.equal(400, status)
      local answer = cjson.decode(body)
      assert.are.equal("SignatureDoesNotMatch", answer.Code)
      assert.truthy(answer.Message:find(emu.pct(emu.pct(token)), 1, true))
      -- V3 with the token header: the canonical request holds it.
      local now = os.time()
      local headers = emu.v3_sign({ method = "POST", key = "STS.emulator", secret = "sts-secret",
        query = { DomainName = "d.example.com" },
        headers = { host = "127.0.0.1", ["x-acs-action"] = "DescribeLiveStreamsBlockList",
          ["x-acs-version"] = "2016-11-01", ["x-acs-date"] = emu.iso8601(now),
          ["x-acs-signature-nonce"] = emu.nonce(), ["x-acs-security-token"] = token } })
      status = aliyun("POST", emu.query({ DomainName = "d.example.com" }), { headers = headers })
      assert.are.equal(400, status) -- the account's token is another: refused after the canonical request
      local _, raw = server:request({ path = "/_emulator/log" })
      for _, form in ipairs({ token, emu.pct(token), emu.pct(emu.pct(token)) }) do
        assert.is_nil(raw:find(form, 1, true), form)
      end
      local entries = cjson.decode(raw).entries
      assert.truthy(entries[1].message:find("SecurityToken%3D***%26", 1, true), entries[1].message)
      assert.truthy(entries[2].canonical_request:find("x-acs-security-token:***\n", 1, true))
    end)
  end)

  describe("Aliyun signature V3", function()
    before_each(function()
      server:clock({ now = V3.time })
    end)

    local function auth(signature, signed, key)
      return "ACS3-HMAC-SHA256 Credential=" .. (key or V3.key) .. ",SignedHeaders="
        .. (signed or V3.signed_headers) .. ",Signature=" .. signature
    end

    local function vector_headers(signature)
      local h = copy(V3.headers)
      h.authorization = auth(signature or V3.signature)
      return h
    end

    it("accepts the published vector and builds the published canonical request", function()
      local status, body = aliyun("POST", V3.query, { headers = vector_headers() })
      assert.are.equal(404, status)
      assert.are.equal("InvalidApi.NotFound", cjson.decode(body).Code)
      local entries = server:log()
      assert.are.equal(V3.hashed_canonical_request, emu.sha256_hex(entries[1].canonical_request))
      assert.are.equal("***", entries[1].headers.authorization)
      assert.are.equal("ACS3-HMAC-SHA256", entries[1].signature_version)
      assert.are.equal(V3.key, entries[1].account)
    end)

    it("rejects a one-byte change with the published string to sign", function()
      local status, body = aliyun("POST", V3.query, { headers = vector_headers(flip_last_char(V3.signature)) })
      assert.are.equal(400, status)
      local err = cjson.decode(body)
      assert.are.equal("SignatureDoesNotMatch", err.Code)
      assert.are.equal("Specified signature is not matched with our calculation. server string to sign is:"
        .. "ACS3-HMAC-SHA256\n" .. V3.hashed_canonical_request, err.Message)
    end)

    it("rejects a changed parameter, a changed header, a wrong secret", function()
      local status, body = aliyun("POST", V3.query:gsub("cn%-shanghai", "cn-beijing"),
        { headers = vector_headers() })
      assert.are.equal(400, status)
      assert.are.equal("SignatureDoesNotMatch", cjson.decode(body).Code)

      local h = vector_headers()
      h["x-acs-action"] = "StopInstances"
      status, body = aliyun("POST", V3.query, { headers = h })
      assert.are.equal(400, status)
      assert.are.equal("SignatureDoesNotMatch", cjson.decode(body).Code)

      local canonical = table.concat({ "POST", "/", V3.query,
        "host:" .. V3.headers.host .. "\nx-acs-action:RunInstances\nx-acs-content-sha256:"
        .. V3.headers["x-acs-content-sha256"] .. "\nx-acs-date:" .. V3.headers["x-acs-date"]
        .. "\nx-acs-signature-nonce:" .. V3.headers["x-acs-signature-nonce"]
        .. "\nx-acs-version:2014-05-26\n",
        V3.signed_headers, V3.headers["x-acs-content-sha256"] }, "\n")
      assert.are.equal(V3.hashed_canonical_request, emu.sha256_hex(canonical))
      local sts = "ACS3-HMAC-SHA256\n" .. V3.hashed_canonical_request
      assert.are.equal(V3.signature, emu.hmac_sha256_hex(V3.secret, sts))
      status, body = aliyun("POST", V3.query,
        { headers = vector_headers(emu.hmac_sha256_hex("YourAccessKeySecreT", sts)) })
      assert.are.equal(400, status)
      assert.are.equal("SignatureDoesNotMatch", cjson.decode(body).Code)
    end)

    it("rejects a stale x-acs-date, a reused nonce, an unknown key", function()
      server:clock({ now = V3.time + 901 })
      local status, body = aliyun("POST", V3.query, { headers = vector_headers() })
      assert.are.equal(400, status)
      assert.are.equal("InvalidTimeStamp.Expired", cjson.decode(body).Code)

      server:clock({ now = V3.time })
      assert.are.equal(404, (aliyun("POST", V3.query, { headers = vector_headers() })))
      status, body = aliyun("POST", V3.query, { headers = vector_headers() })
      assert.are.equal(400, status)
      assert.are.equal("SignatureNonceUsed", cjson.decode(body).Code)

      local h = vector_headers()
      h.authorization = auth(V3.signature, nil, "LTAInobody")
      status, body = aliyun("POST", V3.query, { headers = h })
      assert.are.equal(404, status)
      assert.are.equal("InvalidAccessKeyId.NotFound", cjson.decode(body).Code)
    end)

    it("checks x-acs-content-sha256 against the body and insists every x-acs header is signed", function()
      local status, body = aliyun("POST", V3.query, { headers = vector_headers(), body = "x" })
      assert.are.equal(400, status)
      local err = cjson.decode(body)
      assert.are.equal("SignatureDoesNotMatch", err.Code)
      assert.matches("x-acs-content-sha256 is not the SHA-256 of the request body", err.Message, 1, true)

      local h = vector_headers()
      h.authorization = auth(V3.signature, "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-version")
      status, body = aliyun("POST", V3.query, { headers = h })
      assert.are.equal(400, status)
      err = cjson.decode(body)
      assert.are.equal("IncompleteSignature", err.Code)
      assert.matches("x-acs-signature-nonce must be signed", err.Message, 1, true)

      h = vector_headers()
      h.authorization = "ACS3-HMAC-SHA256 Credential=" .. V3.key
      status, body = aliyun("POST", V3.query, { headers = h })
      assert.are.equal(400, status)
      assert.are.equal("IncompleteSignature", cjson.decode(body).Code)
    end)

    it("signs and accepts a Live call built by hand, with a body", function()
      server:clock({})
      local query = { DomainName = "v3.example.com" }
      local headers = emu.v3_sign({
        method = "POST", path = "/", query = query, body = "PageSize=5",
        headers = {
          host = "127.0.0.1:" .. server.ports.aliyun,
          ["content-type"] = "application/x-www-form-urlencoded",
          ["x-acs-action"] = "DescribeLiveStreamsBlockList",
          ["x-acs-version"] = "2016-11-01",
          ["x-acs-date"] = emu.iso8601(os.time()),
          ["x-acs-signature-nonce"] = emu.nonce(),
        },
      })
      local status, body = aliyun("POST", emu.query(query), { headers = headers, body = "PageSize=5" })
      assert.are.equal(200, status)
      local v = cjson.decode(body)
      assert.are.equal("v3.example.com", v.DomainName)
      assert.are.equal(5, v.PageSize)
    end)
  end)

  describe("ZEGO signature", function()
    before_each(function()
      server:clock({ now = ZEGO.timestamp })
    end)

    it("a ZEGO signature covers no action: one signed URL, replayed for another action, is taken", function()
      server:clock({})
      server:reset()
      -- A URL someone logged: resume stream "a".
      local logged = emu.zego_query({ action = "ResumeRTCStream", params = { StreamId = "a" } })
      local status, v = zego(logged)
      assert.are.equal(200, status)
      assert.are.equal(0, v.Code)
      -- Its common parameters, signature included, with another action and stream.
      local common = logged:gsub("&StreamId=[^&]*", ""):gsub("&Sequence=[^&]*", "")
        :gsub("Action=ResumeRTCStream", "Action=ForbidRTCStream")
      status, v = zego(common .. "&StreamId=victim&Sequence=" .. emu.next_sequence())
      assert.are.equal(200, status)
      assert.are.equal(0, v.Code) -- what the service does: the signature does not cover it
      assert.are.equal("forbidden", server:state().zego.streams["1234567890"].victim.rtc)
    end)

    local function vector_query(overrides)
      local p = {
        Action = "DescribeRTCStreamState", AppId = ZEGO.app_id, SignatureNonce = ZEGO.nonce,
        Timestamp = tostring(ZEGO.timestamp), Signature = ZEGO.signature, SignatureVersion = "2.0",
        StreamId = "s1",
      }
      for k, v in pairs(overrides or {}) do
        p[k] = v or nil
      end
      return emu.query(p)
    end

    it("accepts the published vector", function()
      local status, v, headers = zego(vector_query())
      assert.are.equal(200, status)
      assert.are.equal(0, v.Code)
      assert.are.equal("success", v.Message)
      assert.is_string(v.RequestId)
      assert.are.equal("s1", v.Data.StreamId)
      assert.are.equal("Mon, 08 Mar 2021 07:02:23 GMT", headers.date)
    end)

    it("rejects a one-byte change, a changed parameter, a wrong secret, uppercase hex", function()
      local cases = {
        { Signature = flip_last_char(ZEGO.signature) },
        { Timestamp = tostring(ZEGO.timestamp + 1) },
        { SignatureNonce = "4fd24687296dd9f4" },
        { Signature = emu.zego_signature(ZEGO.app_id, ZEGO.nonce, "9193cc662a4c0ec135ec71fb57194b39",
          ZEGO.timestamp) },
        { Signature = ZEGO.signature:upper() },
      }
      for i, overrides in ipairs(cases) do
        local status, v = zego(vector_query(overrides))
        assert.are.equal(200, status, i)
        assert.are.equal(100000005, v.Code, i)
        assert.are.equal("Invalid signature.", v.Message, i)
        assert.are.equal(cjson.null, v.Data, i)
      end
    end)

    it("allows 10 minutes of skew and no more", function()
      server:clock({ now = ZEGO.timestamp + 600 })
      assert.are.equal(0, select(2, zego(vector_query())).Code)
      server:clock({ now = ZEGO.timestamp + 601 })
      assert.are.equal(100000004, select(2, zego(vector_query())).Code)
      server:clock({ now = ZEGO.timestamp - 601 })
      assert.are.equal(100000004, select(2, zego(vector_query())).Code)
    end)

    it("answers an unknown AppId with 30005 and checks the common fields in order", function()
      local cases = {
        { { AppId = "99999" }, 30005 },
        { { AppId = "12x45" }, 100000001 },
        { { Action = false }, 100000006 },
        { { Action = "FlyToTheMoon" }, 100000007 },
        { { SignatureNonce = false }, 100000008 },
        { { SignatureNonce = "4fd24687296dd9f" }, 2 },         -- 15 hex characters
        { { SignatureNonce = "4fd24687296dd9f3", Timestamp = false }, 100000002 },
        { { SignatureNonce = "4fd24687296dd9fx", Timestamp = false }, 2 },
        { { Timestamp = false }, 100000002 },
        { { Timestamp = "16151869.43" }, 100000003 },
        { { Signature = false }, 100000009 },
        { { SignatureVersion = false }, 100000013 },
        { { SignatureVersion = "1.0" }, 100000014 },
        { { IsTest = "true" }, 30004 },
        { { IsTest = "maybe" }, 30004 },
        { { IsTest = "false" }, 0 },
      }
      for _, case in ipairs(cases) do
        local status, v = zego(vector_query(case[1]))
        assert.are.equal(200, status)
        assert.are.equal(case[2], v.Code, next(case[1]))
      end
    end)

    it("answers the CDN actions with their pages' own codes: 3 authentication failed, 2 a bad parameter", function()
      local cdn = { Action = "ResumeCDNLiveStream" }
      local cases = {
        -- a wrong signature, an expired one, an unknown AppId: 3 (the RTC actions keep 100000005)
        { { Signature = flip_last_char(ZEGO.signature) }, 3, "Authentication failed. (Invalid signature.)" },
        { { AppId = "99999" }, 3, "Authentication failed. (Invalid AppId.)" },
        -- no StreamId: 2, not 30006
        { { StreamId = false }, 2, "Incorrect input parameter. (Invalid StreamId list.)" },
        { { StreamId = "" }, 2, "Incorrect input parameter. (Invalid StreamId list.)" },
      }
      for _, action in ipairs({ "ResumeCDNLiveStream", "ForbidCDNLiveStream" }) do
        cdn.Action = action
        for i, case in ipairs(cases) do
          local o = {}
          for k, v in pairs(cdn) do o[k] = v end
          for k, v in pairs(case[1]) do o[k] = v end
          local status, v = zego(vector_query(o))
          assert.are.equal(200, status)
          assert.are.equal(case[2], v.Code, action .. " " .. i)
          assert.are.equal(case[3], v.Message, action .. " " .. i)
        end
        server:clock({ now = ZEGO.timestamp + 601 })
        local _, v = zego(vector_query(cdn))
        assert.are.equal(3, v.Code, action)
        assert.are.equal("Authentication failed. (Signature expired.)", v.Message)
        server:clock({ now = ZEGO.timestamp })
      end
      -- the RTC actions follow the global table
      local _, v = zego(vector_query({ Action = "DescribeRTCStreamState", StreamId = false }))
      assert.are.equal(30006, v.Code)
      _, v = zego(vector_query({ Action = "DescribeRTCStreamState", Signature = flip_last_char(ZEGO.signature) }))
      assert.are.equal(100000005, v.Code)
    end)

    it("does not reject a reused nonce (ZEGO documents no such check)", function()
      assert.are.equal(0, select(2, zego(vector_query())).Code)
      assert.are.equal(0, select(2, zego(vector_query())).Code)
    end)

    it("signs and accepts a call built by hand with the default app", function()
      server:clock({})
      local status, v = zego(emu.zego_query({ action = "ForbidRTCStream", params = { StreamId = "hand" },
        is_test = false }))
      assert.are.equal(200, status)
      assert.are.equal(0, v.Code)
      local entries = server:log()
      assert.are.equal("***", entries[1].params.Signature)
      assert.are.equal("1234567890", entries[1].account)
      assert.are.equal("ok", entries[1].verdict)
      assert.is_true(entries[1].applied)
    end)
  end)
end)

-- The literals above are the published vectors: checked against the
-- repository's copy, which must be present (a missing or partial copy fails,
-- naming the path). No server is needed, so this runs even if nginx cannot.
describe("streamctl emulator's vectors", function()
  it("agree with the published vectors kept in spec/vectors", function()
    local path = emu.root .. "/spec/vectors/signing-vectors.json"
    local f, why = io.open(path, "rb")
    assert(f, "the published signing vectors are missing: " .. tostring(why))
    local text = f:read("*a")
    f:close()
    local ok, v = pcall(cjson.decode, text)
    assert(ok and type(v) == "table",
      "the published signing vectors in " .. path .. " are not whole JSON (truncated?): " .. tostring(v))
    for kind, n in pairs({ aliyun_rpc_v1 = 2, aliyun_v3 = 1, zego_v2 = 1 }) do
      assert(type(v[kind]) == "table" and #v[kind] == n,
        path .. " does not hold the " .. n .. " " .. kind .. " vector(s) this spec relies on")
    end
    assert.are.same(V1.params, v.aliyun_rpc_v1[1].params)
    assert.are.equal(V1.signature, v.aliyun_rpc_v1[1].signature)
    assert.are.equal(V1.string_to_sign, v.aliyun_rpc_v1[1].string_to_sign)
    assert.are.same(V1_SMS.params, v.aliyun_rpc_v1[2].params)
    assert.are.equal(V1_SMS.signature, v.aliyun_rpc_v1[2].signature)
    assert.are.same(V3.headers, v.aliyun_v3[1].headers)
    assert.are.equal(V3.signature, v.aliyun_v3[1].signature)
    assert.are.equal(V3.hashed_canonical_request, v.aliyun_v3[1].hashed_canonical_request)
    assert.are.equal(ZEGO.signature, v.zego_v2[1].signature)
    assert.are.equal(ZEGO.secret, v.zego_v2[1].server_secret)
  end)
end)
