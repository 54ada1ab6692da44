-- tier: unit
-- The door every ingest server asks (issue 88, streamctl.edge.ingest): one
-- URL answering nginx-rtmp, SRS, MediaMTX and Alibaba Cloud, told apart by
-- the request's shape, each by its documented request (the bodies below)
-- and answered as that server reads answers; malformed and mixed requests
-- refused naming the field, never admitted. The decision itself is
-- streamctl.edge.admission's (spec/edge/41): here a door over a list
-- holding push.example.com/live/banned.
local ingest = require "streamctl.edge.ingest"
local admission = require "streamctl.edge.admission"
local desired = require "streamctl.operator.desired"
local fake_shdict = require "spec.helpers.fake_shdict"

local function door()
  local list = desired.shdict(fake_shdict.new({ t = 0 }))
  assert(list:made_whole("the spec"))
  assert(list:add { "aliyun|push.example.com|live|banned" })
  return assert(admission.new { forbidden = list })
end

-- What the door answers `r` (ingest.read, then decide, then ingest.answer).
local function ask(r)
  r.query = r.query or {}
  local req, v, dialect = ingest.read(r)
  if req then dialect, v = v, door():decide(req) end
  local status, body, ctype = ingest.answer(dialect, v)
  return { dialect = dialect, status = status, body = body, ctype = ctype, code = v.code, reason = v.reason,
           action = req and req.action }
end

-- nginx-rtmp's on_publish: a form POST, the client's query (?token=...) appended.
local function rtmp(name, extra)
  return { method = "POST", content_type = "application/x-www-form-urlencoded",
    body = "app=live&flashver=FMLE/3.0%20(compatible%3B%20FMSc/1.0)&swfurl=&tcurl=rtmp://push.example.com:1935/live"
      .. "&pageurl=&addr=10.0.0.7&clientid=11&call=publish&name=" .. name .. "&type=live&token=abc" .. (extra or "") }
end

-- SRS's on_publish (http_hooks), as its docs show it.
local function srs(stream, vhost)
  return { method = "POST", content_type = "application/json", body = '{"server_id":"vid-0xk989d","action":'
    .. '"on_publish","client_id":"341w361a","ip":"127.0.0.1","vhost":"' .. (vhost or "push.example.com")
    .. '","app":"live","tcUrl":"rtmp://127.0.0.1:1935/live","stream":"' .. stream .. '","param":"?token=abc",'
    .. '"stream_url":"/live/' .. stream .. '","stream_id":"vid-124q9y3"}' }
end

-- MediaMTX's external authentication request.
local function mediamtx(path, action)
  return { method = "POST", content_type = "application/json", query = { domain = "push.example.com" },
    body = '{"user":"","password":"","token":"","ip":"10.0.0.8","action":"' .. (action or "publish") .. '","path":"'
      .. path .. '","protocol":"rtmp","id":null,"query":"token=abc"}' }
end

describe("the door's dialects", function()
  it("nginx-rtmp: the domain from tcurl's host; 200 admits, 403 refuses", function()
    local a, b = ask(rtmp "cam-1"), ask(rtmp "banned")
    assert.same({ "nginx-rtmp", 200, "admitted\n", "Admitted", "publish" }, { a.dialect, a.status, a.body, a.code, a.action })
    assert.same({ "nginx-rtmp", 403, "refused\n", "Forbidden" }, { b.dialect, b.status, b.body, b.code })
    -- ?domain= on the hook URL decides
    local r = rtmp "banned"
    r.query = { domain = "other.example.com" }
    assert.equal(200, ask(r).status)
    local play = rtmp("banned")
    play.body = play.body:gsub("call=publish", "call=play")
    assert.same({ 403, "play" }, { ask(play).status, ask(play).action })
  end)

  it("nginx-rtmp: tcurl's host read as the URL grammar reads it; a form's type in any case", function()
    -- { tcurl, the domain the door reads from it (nil: none, and no ?domain=) }
    for _, row in ipairs {
      { "rtmp://push.example.com:1935/live", "push.example.com" }, { "RTMP://Push.example.com/live", "Push.example.com" },
      { "rtmp://push.example.com", "push.example.com" }, { "rtmp://h?x=1", "h" }, { "rtmp://h#f", "h" },
      { "rtmps+x.y-z://h/live", "h" }, { "rtmp:///live", nil }, { "rtmp://:1935/live", nil }, { "1rtmp://h/live", nil },
      { "://h/live", nil }, { "rt mp://h/live", nil }, { "rtmp:/h/live", nil }, { "h/live", nil }, { "rtmp://", nil },
    } do
      local r = rtmp("cam-1")
      -- (written into the form as nginx-rtmp escapes it: a space and a + escaped; %% doubled for gsub)
      r.body = r.body:gsub("tcurl=[^&]*", "tcurl=" .. row[1]:gsub("[ +]", { [" "] = "%%20", ["+"] = "%%2B" }))
      local req, v = ingest.read { method = r.method, content_type = r.content_type, body = r.body, query = {} }
      if row[2] then
        assert.equal(row[2], req and req.domain_name, row[1])
      else
        assert.same({ "InvalidRequest", "no domain: give the hook URL ?domain= (the ingest domain the list names "
          .. "streams by)" }, { v and v.code, v and v.reason }, row[1])
      end
    end
    for _, ctype in ipairs { "Application/X-WWW-Form-Urlencoded", "application/x-www-form-urlencoded; charset=UTF-8" } do
      local r = rtmp("cam-1")
      r.content_type = ctype
      assert.equal("nginx-rtmp", ask(r).dialect, ctype)
    end
  end)

  it("SRS: vhost names the domain; 200 {\"code\":0} admits, anything else refuses", function()
    local a, b = ask(srs "cam-1"), ask(srs "banned")
    assert.same({ "srs", 200, '{"code":0}' }, { a.dialect, a.status, a.body })
    assert.same({ "srs", 403, '{"code":403,"error":"Forbidden","reason":"aliyun stream push.example.com/live/banned '
      .. 'is on the forbid list"}' }, { b.dialect, b.status, b.body })
    -- the default vhost names no domain: ?domain= must
    local d = ask(srs("cam-1", "__defaultVhost__"))
    assert.same({ 403, "InvalidRequest" }, { d.status, d.code })
    assert.matches("^no domain: give the hook URL %?domain=", d.reason)
  end)

  it("MediaMTX: path is app/stream, the domain from ?domain=; publish and read decided alike", function()
    assert.same({ "mediamtx", 200 }, { ask(mediamtx "live/cam-1").dialect, ask(mediamtx "live/cam-1").status })
    assert.equal(403, ask(mediamtx "live/banned").status)
    assert.equal(403, ask(mediamtx("live/banned", "read")).status)
    local api = ask(mediamtx("live/cam-1", "api"))
    assert.same({ 403, "InvalidRequest", "field 'action' must be publish, read or playback: the door decides "
      .. "streams (got api)" }, { api.status, api.code, api.reason })
    local deep = ask(mediamtx "live/a/b")
    assert.same({ 403, "field 'path' must be app/stream (got live/a/b)" }, { deep.status, deep.reason })
  end)

  it("Alibaba Cloud's remote authentication: a GET, as /admission/aliyun", function()
    local a = ask { method = "GET", query = { domain = "push.example.com", app = "live", stream = "cam-1" } }
    local b = ask { method = "GET", query = { domain = "push.example.com", app = "live", stream = "banned" } }
    assert.same({ "aliyun", 200, "aliyun", 403 }, { a.dialect, a.status, b.dialect, b.status })
    assert.equal('{"code":"Forbidden","reason":"aliyun stream push.example.com/live/banned is on the forbid list"}',
      b.body)
    -- (/admission/aliyun reads every request as this dialect: one without app is the door's to refuse)
    local req = assert(ingest.read { method = "GET", query = { domain = "push.example.com", stream = "cam-1" },
      dialect = "aliyun" })
    assert.same({ "push.example.com", nil, "cam-1" }, { req.domain_name, req.app_name, req.stream_name })
    assert.has_error(function() ingest.read { method = "GET", query = {}, dialect = "rtmp" } end,
      "bad argument #1 to 'read' (no dialect rtmp)")
  end)

  it("passes the client's auth_key on from each server's form of its query", function()
    local function key_of(r) r.query = r.query or {} return (ingest.read(r)).auth_key end
    assert.equal("k1", key_of(rtmp("cam-1", "&auth_key=k1")))
    local s = srs "cam-1"
    s.body = s.body:gsub('"param":"%?token=abc"', '"param":"?token=abc&auth_key=k2"')
    assert.equal("k2", key_of(s))
    local m = mediamtx "live/cam-1"
    m.body = m.body:gsub('"query":"token=abc"', '"query":"auth_key=k3"')
    assert.equal("k3", key_of(m))
    assert.is_nil(key_of(srs "cam-1"))
  end)

  it("refuses, naming the field, what matches no dialect, more than one, or lacks a field", function()
    local function reason(r) local v = ask(r) assert.equal(403, v.status) return v.reason end
    assert.matches("^the request is none of nginx%-rtmp's form", reason { method = "POST",
      content_type = "application/json", body = '{"hello":1}' })
    assert.equal("the request matches both srs and mediamtx: refused", reason { method = "POST",
      content_type = "application/json", body = '{"client_id":"1","path":"live/x","protocol":"rtmp"}' })
    assert.equal("field 'name' is missing or given more than once",
      reason { method = "POST", content_type = "application/x-www-form-urlencoded", body = "call=publish&app=live" })
    assert.equal("field 'name' is missing or given more than once", reason { method = "POST",
      content_type = "application/x-www-form-urlencoded", body = "call=publish&app=live&name=a&name=banned&"
        .. "tcurl=rtmp://push.example.com/live" })
    assert.equal("field 'call' must be publish or play (got update)", reason { method = "POST",
      content_type = "application/x-www-form-urlencoded", body = "call=update&app=live&name=a" })
    assert.equal("query argument 'domain' given more than once", reason((function()
      local r = rtmp "cam-1" r.query = { domain = { "a.example.com", "b.example.com" } } return r end)()))
    assert.equal("body: not a JSON object (it has the key \"stream\" twice (the second at byte 53))", reason {
      method = "POST",
      content_type = "application/json", body = '{"client_id":"1","action":"on_publish","stream":"a","stream":"b"}' })
    assert.equal("more than 100 query arguments", reason { method = "GET", query = {}, truncated = true })
    assert.equal("body: more than 8192 bytes", reason { method = "POST", body = string.rep("x", 8193) })
    -- the list's own rules still apply: a port in the domain
    local r = rtmp "cam-1"
    r.query = { domain = "push.example.com:1935" }
    assert.equal("domain_name must be a domain without a port (the list holds domains)", reason(r))
  end)
end)
