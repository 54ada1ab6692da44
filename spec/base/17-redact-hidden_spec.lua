-- tier: unit
-- What a signed request carries that no message may show (redact.hidden),
-- found by plain search since issue 72: every value of each of the
-- provider's parameters, in the URL's query and in a form body, decoded;
-- a header's whole value or its Signature= part, whatever the name's case.
-- And the rules that memoise what passed (validate.text_rule, a schema's
-- names) refuse a bad value after good ones, every time.
local redact = require "streamctl.base.redact"
local url = require "streamctl.base.url"
local validate = require "streamctl.base.validate"

local RULES = {
  redact = {
    query = { "Signature", "SecurityToken" },
    headers = { authorization = "signature", ["x-acs-security-token"] = "all" },
  },
}

local function sorted(t)
  table.sort(t)
  return t
end

describe("redact.hidden", function()
  it("takes each named parameter's value from the query, decoded, and no other", function()
    local req = { url = "https://h/?AccessKeyId=k&XSignature=no&Signature=a%2Fb%3D&SignatureNonce=n"
      .. "&SecurityToken=t%2B1&Signature=second", body = "" }
    assert.same({ "a/b=", "second", "t+1" }, sorted(redact.hidden(RULES, req)))
  end)

  it("reads a form body, whose first parameter has no & before it", function()
    local req = { url = "https://h/", body = "Signature=b%20c&Other=x&SecurityToken=tok" }
    assert.same({ "b c", "tok" }, sorted(redact.hidden(RULES, req)))
  end)

  it("takes a parameter that ends the text, an empty one, and one right after the ?", function()
    assert.same({ "" , "last" }, sorted(redact.hidden(RULES, { url = "https://h/?Signature=&a=1&SecurityToken=last" })))
    assert.same({ "first" }, redact.hidden(RULES, { url = "https://h/?Signature=first&b=2" }))
  end)

  it("keeps a malformed escape as it stands (it is hidden as sent)", function()
    assert.same({ "a%zz" }, redact.hidden(RULES, { url = "https://h/?Signature=a%zz" }))
  end)

  it("reads the headers whatever their names' case", function()
    local req = { url = "https://h/", headers = {
      Authorization = "ACS3-HMAC-SHA256 Credential=k,SignedHeaders=host,Signature=abc123",
      ["X-Acs-Security-Token"] = "token-1", host = "h" } }
    assert.same({ "abc123", "token-1" }, sorted(redact.hidden(RULES, req)))
  end)

  it("finds nothing in a request that carries none", function()
    assert.same({}, redact.hidden(RULES, { url = "https://h/?A=1", body = "B=2", headers = { host = "h" } }))
    assert.same({}, redact.hidden({}, { url = "https://h/?Signature=x" }))
  end)
end)

describe("what each build hands over", function()
  local aliyun = require "streamctl.aliyun"
  local zego = require "streamctl.zego"
  local checks = require "spec.helpers.checks"
  local function never() error("nothing is sent") end

  -- what redact.hidden finds by searching a copy the build never saw, and what the build handed over
  local function both(client, action, params)
    local req = assert(client:prepare(action, params))
    local copy = {}
    for k, v in pairs(req) do copy[k] = v end
    return sorted(redact.hidden(client._rules, req)), sorted(redact.hidden(client._rules, copy))
  end

  it("is what a search of the request finds: Aliyun V1 and V3, with and without a token, and unsigned", function()
    local STREAM = { DomainName = "d.example", AppName = "live", StreamName = "s", LiveStreamType = "publisher" }
    for _, version in ipairs { "v1", "v3" } do
      for _, token in ipairs { false, true } do
        local c = checks.scripted_client(aliyun, 1700000000, { signature_version = version,
          security_token = token and "STS.tok/en+with=chars" or nil }, never)
        local handed, found = both(c, "ResumeLiveStream", STREAM)
        assert.same(found, handed)
        assert.equal(token and 2 or 1, #handed, version)
      end
    end
  end)

  it("is what a search of the request finds: ZEGO", function()
    local c = checks.scripted_client(zego, 1700000000, nil, never)
    local handed, found = both(c, "ForbidRTCStream", { StreamId = "s1" })
    assert.same(found, handed)
    assert.equal(1, #handed)
  end)

  it("is found by searching once the build's table has been renewed (every 1,024 requests)", function()
    local c = checks.scripted_client(aliyun, 1700000000, { security_token = "STS.tok" }, never)
    local PARAMS = { DomainName = "d.example", AppName = "live", StreamName = "s", LiveStreamType = "publisher" }
    local first = assert(c:prepare("ResumeLiveStream", PARAMS))
    local handed = sorted(redact.hidden(c._rules, first))
    for _ = 1, 1100 do assert(c:prepare("ResumeLiveStream", PARAMS)) end
    assert.same(handed, sorted(redact.hidden(c._rules, first)))
    assert.equal(2, #handed)
  end)

  it("is a copy each time: what a caller adds to it stays its own", function()
    local c = checks.scripted_client(aliyun, 1700000000, nil, never)
    local req = assert(c:prepare("ResumeLiveStream", { DomainName = "d.example", AppName = "live", StreamName = "s",
      LiveStreamType = "publisher" }))
    local first = redact.hidden(c._rules, req)
    first[#first + 1] = "added"
    assert.equal(#first - 1, #redact.hidden(c._rules, req))
  end)
end)

describe("redact.answer", function()
  local core = require "streamctl.core"
  local SIG = "Yhb8Y/rJAWQ7XYfjNnS9wygc+H8="

  it("hides a value in every form it takes in an answer, whatever else it holds", function()
    local once = core.percent_encode(SIG)
    for _, form in ipairs { SIG, once, core.percent_encode(once) } do
      local raw = '{"Message":"signature ' .. form .. ' mismatch"}'
      local t = { Message = "signature " .. form .. " mismatch" }
      redact.answer(t, { SIG }, raw)
      assert.equal("signature <redacted> mismatch", t.Message, form)
    end
  end)

  it("leaves an answer alone that holds a run of a value but no form of it", function()
    local t = { Message = "rJAWQ7XYfjNnS9wygc alone" }
    redact.answer(t, { SIG }, '{"Message":"rJAWQ7XYfjNnS9wygc alone"}')
    assert.equal("rJAWQ7XYfjNnS9wygc alone", t.Message)
  end)

  it("may_hold: false only when the first kept run of every value is absent", function()
    assert.is_false(redact.may_hold('{"RequestId":"r-1"}', { SIG, "STS.token-value" }))
    assert.is_true(redact.may_hold("...Yhb8Y...", { SIG }))
    assert.is_true(redact.may_hold("x", { "/+/+" })) -- (no run: the forms decide)
    assert.is_false(redact.may_hold("anything", { "abc" })) -- (under 4 bytes: never hidden)
  end)
end)

describe("url.unescape", function()
  it("decodes %XX and refuses a % not followed by two hex digits", function()
    for _, c in ipairs { { "abc", "abc" }, { "a%2Fb", "a/b" }, { "a%41%42", "aAB" }, { "", "" },
      { "%", nil }, { "%2", nil }, { "%2g", nil }, { "%g2", nil }, { "%%41", nil }, { "x%4", nil },
      { "%41%", nil }, { "%2f%2F", "//" }, { "%00x", "\0x" }, { "%e4%b8%ad", "\228\184\173" }, { "%+1", nil },
      { "% 1", nil }, { "a%41b%42c", "aAbBc" } } do
      assert.equal(c[2], url.unescape(c[1]), c[1])
    end
  end)
end)

describe("rules that remember what passed", function()
  it("refuse a bad value after the same field passed good ones, past the memo's size", function()
    local f = { name = "stream_name", type = "string", shape = "name" }
    for i = 1, 600 do assert.is_nil(validate.text_rule(f, "s" .. i)) end
    assert.is_nil(validate.text_rule(f, "s1"))
    assert.matches("must hold only letters", validate.text_rule(f, "bad name"))
    assert.matches("must hold only letters", validate.text_rule(f, "bad name"))
  end)

  it("name an unknown field, and see a field added to the schema since", function()
    local schema = { { name = "a", type = "string" } }
    assert.truthy(validate.fields(schema, { a = "x" }, "m"))
    local _, err = validate.fields(schema, { a = "x", b = "y" }, "m")
    assert.matches("^field 'b' is not a field of m", err)
    schema[2] = { name = "b", type = "string" }
    assert.truthy(validate.fields(schema, { a = "x", b = "y" }, "m"))
  end)
end)
