-- tier: unit
-- A ZEGO callback's Content-Type (streamctl.edge.callbacks, issue 68): one
-- that is not what ZEGO sends (application/json; a form with `form = true`)
-- is refused naming the type it got and the one expected, before any field
-- is read: a JSON body posted as a form (`curl -d`) was refused as "the
-- nonce is not 1 to 64 printable characters". In plain Lua (`check`) and in
-- nginx's form (`check_nginx`, against a stand-in `ngx` that records
-- whether the body was read).
local callbacks = require "streamctl.edge.callbacks"
local cjson = require "cjson"

-- ZEGO's documented example: nonce 123412, timestamp 1470820198, secret "secret"
local NOW = 1470820200
local FIELDS = { event = "stream_create", appid = "1234567890", timestamp = "1470820198", nonce = "123412",
                 signature = "5bd59fd62953a8059fb7eaba95720f66d19e4517", stream_id = "s1" }
local JSON = cjson.encode(FIELDS)
local FORM = "event=stream_create&appid=1234567890&timestamp=1470820198&nonce=123412"
  .. "&signature=5bd59fd62953a8059fb7eaba95720f66d19e4517&stream_id=s1"

local NOT_JSON = ", not application/json (what ZEGO sends; for a project ZEGO set to POST/FORM pass form = true)"
local NOT_FORM = ", not application/x-www-form-urlencoded (form = true; ZEGO's default is application/json)"
local PREFIX = "streamctl: zego: MalformedCallback: "

-- { what, headers, body, form, expected: "event" or the exact message }
local ROWS = {
  { "a JSON body posted as a form (curl -d)", { ["Content-Type"] = "application/x-www-form-urlencoded" }, JSON, nil,
    'the Content-Type is "application/x-www-form-urlencoded"' .. NOT_JSON },
  { "a multipart form (curl -F)", { ["content-type"] = "multipart/form-data; boundary=x" }, JSON, nil,
    'the Content-Type is "multipart/form-data; boundary=x"' .. NOT_JSON },
  { "text, a body that is not JSON either", { ["CONTENT-TYPE"] = "text/plain" }, "{", nil,
    'the Content-Type is "text/plain"' .. NOT_JSON },
  { "a type cut at 64 bytes, its newline escaped", { ["Content-Type"] = "a\n" .. ("b"):rep(80) }, JSON, nil,
    'the Content-Type is "a\\n' .. ("b"):rep(62) .. '"' .. NOT_JSON },
  { "JSON", { ["Content-Type"] = "application/json" }, JSON, nil, "event" },
  { "JSON with a charset, in capitals", { ["Content-Type"] = " Application/JSON ; charset=utf-8" }, JSON, nil,
    "event" },
  { "no Content-Type: ZEGO's default, JSON", {}, JSON, nil, "event" },
  { "a form, form = true", { ["Content-Type"] = "application/x-www-form-urlencoded; charset=utf-8" }, FORM, true,
    "event" },
  { "JSON, form = true", { ["Content-Type"] = "application/json" }, JSON, true,
    'the Content-Type is "application/json"' .. NOT_FORM },
  { "no Content-Type, form = true", {}, FORM, true, "the Content-Type is missing" .. NOT_FORM },
  { "two Content-Type headers", { ["Content-Type"] = "application/json", ["content-type"] = "application/json" },
    JSON, nil, "the request has more than one Content-Type header" },
}

local function opts(form)
  return { secret = "secret", now = NOW, replay = callbacks.memory_replay(), form = form }
end

-- What a row gives: "event" (the event's stream_id checked) or the message.
local function outcome(event, err)
  if event then
    assert.equal("s1", event.stream_id)
    assert.is_nil(err)
    return "event"
  end
  assert.equal("MalformedCallback", err.code)
  assert.equal("validation", err.kind)
  local text = tostring(err)
  assert.equal(PREFIX, text:sub(1, #PREFIX))
  return text:sub(#PREFIX + 1)
end

describe("a ZEGO callback's Content-Type, in plain Lua (check)", function()
  for _, row in ipairs(ROWS) do
    it(row[1], function()
      assert.equal(row[5], outcome(callbacks.zego.check({ method = "POST", headers = row[2], body = row[3] },
        opts(row[4]))))
    end)
  end

  it("form must be a boolean (misuse raises)", function()
    assert.has_error(function()
      callbacks.zego.check({ method = "POST", headers = {}, body = JSON }, opts("yes"))
    end, "bad argument #2 to 'check' (form must be a boolean)")
  end)
end)

describe("a ZEGO callback's Content-Type, in nginx (check_nginx)", function()
  -- A stand-in for the nginx request: its headers and body, and whether the body was read.
  local read
  local function fake_ngx(headers, body, method)
    read = false
    return {
      req = {
        get_headers = function() return headers end,
        get_method = function() return method or "POST" end,
        read_body = function() read = true end,
        get_body_data = function() return read and body or nil end,
        get_body_file = function() return nil end,
      },
      var = { args = "" },
    }
  end

  after_each(function() rawset(_G, "ngx", nil) end)

  for _, row in ipairs(ROWS) do
    it(row[1], function()
      rawset(_G, "ngx", fake_ngx(row[2], row[3]))
      assert.equal(row[5], outcome(callbacks.zego.check_nginx(opts(row[4]))))
      -- the body is read only under the type expected
      assert.equal(row[5] == "event", read)
    end)
  end

  it("a GET is refused as one, whatever its type (the method first, as check has it)", function()
    rawset(_G, "ngx", fake_ngx({ ["Content-Type"] = "text/plain" }, JSON, "GET"))
    assert.equal("a callback is a POST (got GET)", outcome(callbacks.zego.check_nginx(opts())))
  end)
end)
