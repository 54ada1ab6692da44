-- tier: unit
-- What a new user met (issue 40), one class per block, each refused or said
-- the way that tells what to do, with nothing sent:
--   * names and domains in the providers' strictest shape (spec/41 gives every
--     shaped flag its bad values; here the Lua API, batches, `call`);
--   * an Aliyun forbid whose ResumeTime is past;
--   * plain http:// to anything but this machine;
--   * a CA file that holds no certificate;
--   * a method called with a dot;
--   * a TLS failure a CA would fix: its hint (said once by the command: spec/41);
--   * an option mistyped, or a value that starts with '-': one line naming the fix;
--   * ZEGO's envelope (Code, Message, Data null) is not an answer to print;
--   * `streamctl man` writes the page's text where man does not show it (--roff: its source).
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local errors = require "streamctl.base.errors"
local cli_output = require "streamctl.cli.output"
local cjson = require "cjson"
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"

local NOW = 1700000000
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local OK_ALI = function() return checks.reply(200, '{"RequestId":"r"}') end
local OK_ZEGO = function() return checks.reply(200, '{"Code":0,"Message":"success","RequestId":"z"}') end

describe("names and domains", function()
  local STREAM = { domain_name = "push.example.com", app_name = "live", stream_name = "match-7" }
  local function with(k, v)
    local t = {}
    for a, b in pairs(STREAM) do t[a] = b end
    t[k] = v
    return t
  end

  it("are refused out of shape, naming the field and the rule, with nothing sent", function()
    local c, w = checks.scripted_client(aliyun, NOW, {}, OK_ALI)
    local cases = {
      { "domain_name", "https://push.example.com", "must be a domain name (push.example.com), not a URL" },
      { "domain_name", "push.example.com:1935", "must be a domain name alone (push.example.com): no port or path" },
      { "domain_name", "push.example.com/live", "must be a domain name alone (push.example.com): no port or path" },
      { "domain_name", "Push.Example.com", "must be lower case (push.example.com)" },
      { "domain_name", "push.example.com.", "must not end with a dot" },
      { "domain_name", "push..example.com", "must not hold an empty label (two dots, or a dot first)" },
      { "domain_name", "push.-x.com", "must not hold a label that starts or ends with '-'" },
      { "domain_name", "push_1.example.com", "must hold only letters, digits, '-' and dots (found '_')" },
      { "domain_name", string.rep("a", 64) .. ".com", "must hold labels of at most 63 bytes (got 64)" },
      { "app_name", "li ve", "must hold only letters, digits, '-' and '_' (found a space at byte 3)" },
      { "stream_name", "match 1/../x", "must hold only letters, digits, '-' and '_' (found a space at byte 6)" },
      { "stream_name", " b ", "must hold only letters, digits, '-' and '_' (found a space at byte 1)" },
      { "stream_name", "a/b", "must hold only letters, digits, '-' and '_' (found '/' at byte 2)" },
      { "stream_name", "caf\195\169", "must hold only letters, digits, '-' and '_' (found a non-ASCII character "
        .. "(U+00E9) at byte 4)" },
    }
    for _, case in ipairs(cases) do
      local res, err = c:resume_live_stream(with(case[1], case[2]))
      assert.is_nil(res, case[2])
      assert.equal("field '" .. case[1] .. "' " .. case[3], err.message)
    end
    -- the whole list checked before anything is sent; the raw `call` keeps the same rules
    local _, err = c:forbid_live_streams { domain_name = "push.example.com", app_name = "live",
                                           stream_names = { "a", "b c" } }
    assert.equal("field 'stream_names' item 2 must hold only letters, digits, '-' and '_' (found a space at byte 2)",
      err.message)
    _, err = c:call("ResumeLiveStream", { LiveStreamType = "publisher", DomainName = "push.example.com", AppName = "live",
                                         StreamName = "x#y" })
    assert.equal("parameter 'StreamName' must hold only letters, digits, '-' and '_' (found '#' at byte 2)",
      err.message)
    assert.equal(0, #w.sent)
    -- what the rules take: '*' for every app, the longest of each
    assert(c:resume_live_stream(with("app_name", "*")))
    assert(c:resume_live_stream(with("stream_name", string.rep("A_b-9", 51) .. "z")))
    assert(c:resume_live_stream(with("domain_name", "a-1.b2.example.com")))
    assert.equal(3, #w.sent)
  end)

  it("keep ZEGO's stream IDs to letters, digits, '-' and '_', single and batched", function()
    local c, w = checks.scripted_client(zego, NOW, {}, OK_ZEGO)
    local _, err = c:forbid_rtc_stream { stream_id = "room 1#host" }
    assert.equal("field 'stream_id' must hold only letters, digits, '-' and '_' (found a space at byte 5)",
      err.message)
    _, err = c:forbid_rtc_streams { stream_ids = { "ok-1", " b " } }
    assert.equal("field 'stream_ids' item 2 must hold only letters, digits, '-' and '_' (found a space at byte 1)",
      err.message)
    assert.equal(0, #w.sent)
    assert(c:forbid_rtc_streams { stream_ids = { "room_1-host", string.rep("z", 256) } })
    assert.equal(1, #w.sent)
  end)
end)

describe("an Aliyun forbid's resume_time", function()
  it("is refused when it is not in the future, single and batched, with nothing sent", function()
    local c, w = checks.scripted_client(aliyun, NOW, {}, OK_ALI)
    local want = "field 'resume_time' must be in the future (it is when the forbidden stream may publish again)"
    for _, t in ipairs { NOW, NOW - 1, "2001-01-01T00:00:00Z", 0 } do
      local _, err = c:forbid_live_stream { domain_name = "push.example.com", app_name = "live",
                                            stream_name = "m", resume_time = t }
      assert.equal(want, err.message)
      _, err = c:forbid_live_streams { domain_name = "push.example.com", app_name = "live",
                                       stream_names = { "m", "n" }, resume_time = t }
      assert.equal(want, err.message)
    end
    assert.equal(0, #w.sent)
    assert(c:forbid_live_stream { domain_name = "push.example.com", app_name = "live", stream_name = "m",
                                  resume_time = NOW + 60 })
    assert.equal(1, #w.sent)
  end)
end)

-- A client's constructor refused `message`: nil and the InvalidParameter error.
local function refused(message, client, err)
  assert.is_nil(client)
  assert.same({ "InvalidParameter", "validation", message }, { err.code, err.kind, err.message })
end

describe("endpoints", function()
  it("take plain http only to this machine", function()
    local want = "option 'endpoint' must use https (plain http only for this machine: 127.0.0.1, ::1, localhost)"
    for _, e in ipairs { "http://live.example.com", "http://127.0.0.1.example.com", "http://10.0.0.1:8080" } do
      refused(want, aliyun.new { endpoint = e, access_key_id = "AK", access_key_secret = "sk" })
      refused(want, zego.new { endpoint = e, app_id = 1, server_secret = "s" })
    end
    refused("option 'sts_endpoint' must use https (plain http only for this machine: 127.0.0.1, ::1, "
      .. "localhost)", aliyun.new { sts_endpoint = "http://sts.example.com", access_key_id = "AK",
      access_key_secret = "sk" })
    for _, e in ipairs { "http://127.0.0.1:18080", "http://localhost:1", "http://[::1]:8", "https://live.example.com" } do
      assert(aliyun.new { endpoint = e, access_key_id = "AK", access_key_secret = "sk" }):close()
    end
  end)
end)

describe("a CA file", function()
  local dir
  before_each(function() dir = process.temp_dir() end)
  after_each(function() process.run("rm -rf " .. process.quote(dir)) end)

  it("that holds no PEM certificate is refused when the client is made, naming what it is not", function()
    process.write_file(dir .. "/key.pem", "-----BEGIN PRIVATE KEY-----\nMIIB\n-----END PRIVATE KEY-----\n")
    process.write_file(dir .. "/empty.pem", "")
    process.write_file(dir .. "/ca.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    local function new(path) return aliyun.new { ca_file = path, access_key_id = "AK", access_key_secret = "sk" } end
    refused("option 'ca_file' holds no PEM certificate (-----BEGIN CERTIFICATE-----): name the CA's "
      .. "certificate, not its key or another file", new(dir .. "/key.pem"))
    refused("option 'ca_file' is empty", new(dir .. "/empty.pem"))
    refused("option 'ca_file' cannot be read: " .. dir .. " is not a file (a directory)", new(dir))
    assert(new(dir .. "/ca.pem")):close()
  end)
end)

describe("a method called with a dot", function()
  it("raises naming the method and the colon, for named and batch methods and the client's own", function()
    local c = checks.scripted_client(aliyun, NOW, {}, OK_ALI)
    local fields = { domain_name = "push.example.com", app_name = "live", stream_name = "m" }
    -- (each a call, not a tail call: the error is blamed on this file's line)
    for name, call in pairs {
      resume_live_stream = function() local r = c.resume_live_stream(fields) return r end,
      forbid_live_streams = function() local r = c.forbid_live_streams { stream_names = { "a" } } return r end,
      call = function() local r = c.call("ResumeLiveStream", {}) return r end,
      dry_run = function() local r = c.dry_run("resume_live_stream", fields) return r end,
      close = function() local r = c.close() return r end,
    } do
      checks.raises(call, "streamctl.aliyun: " .. name .. " is a method: call it with a colon, client:" .. name
        .. "(...), not client." .. name .. "(...)", "76-misuse_spec.lua")
    end
    -- a wrapper that reaches the client through __index is the client
    local wrapped = setmetatable({}, { __index = c })
    assert(wrapped:resume_live_stream(fields))
  end)
end)

describe("a TLS failure a CA would fix", function()
  it("carries a hint naming option 'ca_file'; a host name mismatch names 'endpoint'; others none", function()
    local function hint(message) return errors.transport("aliyun", "A", { code = "TLSError", message = message }).hint end
    local ca = "the server's certificate is not signed by a CA this client trusts: name the CA that signed it with "
      .. "option 'ca_file' (the default is the system's CAs)"
    assert.equal(ca, hint("SSL certificate problem: unable to get local issuer certificate"))
    assert.equal(ca, hint("SSL certificate problem: self-signed certificate in certificate chain"))
    assert.equal(ca, hint("handshake failed: 20: unable to get local issuer certificate (certificate verify failed)"))
    assert.equal("the server's certificate does not name the endpoint's host: check option 'endpoint'",
      hint("SSL: no alternative certificate subject name matches target host name '127.0.0.2'"))
    assert.is_nil(hint("SSL connect error"))
    assert.is_nil(errors.transport("aliyun", "A", { code = "Timeout", message = "certificate" }).hint)
  end)
end)

describe("the command's parsing", function()
  local function run(argv) return checks.run_cli(argv, { getenv = function() return nil end }) end

  it("suggests the option meant, in one line, for a start, a misspelling or a value that starts with '-'", function()
    local base = { "aliyun", "forbid-live-stream" }
    for _, case in ipairs {
      { "--domain", "streamctl: unknown option '--domain' (did you mean '--domain-name'?)\n" },
      { "--stream_name", "streamctl: unknown option '--stream_name' (did you mean '--stream-name'?)\n" },
      { "--strem-name", "streamctl: unknown option '--strem-name' (did you mean '--stream-name'?)\n" },
    } do
      local argv = { table.unpack(base) }
      argv[#argv + 1] = case[1]
      argv[#argv + 1] = "x"
      local status, out, err = run(argv)
      assert.same({ 2, "", case[2] }, { status, out, err })
    end
    local status, _, err = run { "aliyun", "forbid-live-stream", "--resume-time", "-1" }
    assert.same({ 2, "streamctl: unknown option '-1' (a value that starts with '-' goes after '=': "
      .. "--resume-time=-1)\n" }, { status, err })
    -- nothing near: the usage, as before
    status, _, err = run { "aliyun", "forbid-live-stream", "--zzzzzz" }
    assert.equal(2, status)
    assert.truthy(err:find("^Usage: streamctl aliyun forbid%-live%-stream"))
    assert.truthy(err:find("streamctl: unknown option '--zzzzzz' (see --help)\n", 1, true))
  end)

  it("streamctl man writes the manual page when it is not shown on a terminal: its text, or with --roff its source",
    function()
      local status, out, err = run { "man", "--roff" }
      assert.same({ 0, "" }, { status, err })
      assert.equal(process.read_file(ROOT .. "/docs/streamctl.1"), out)
      status, out, err = run { "man" }
      assert.same({ 0, "" }, { status, err })
      assert.equal(require("streamctl.cli.man").plain(process.read_file(ROOT .. "/docs/streamctl.1")), out)
    end)

  it("streamctl man's plain text indents an .RS block and keeps an .nf block's lines as they are", function()
    local plain = require("streamctl.cli.man").plain
    assert.equal(table.concat({
      "SHARED LIMITS",
      "       with --redis URL, the URL",
      "              redis://[[user]:password@]host[:port][/db][?nodes=N&prefix=P&timeout_ms=MS]",
      "              a  second   line",
      "       every process keeps its limits.",
      "" }, "\n"), plain(table.concat({
      '.SH "SHARED LIMITS"', "with", ".B \\-\\-redis", "URL, the URL", ".RS", ".nf",
      "redis://[[user]:password@]host[:port][/db][?nodes=N&prefix=P&timeout_ms=MS]", "a  second   line",
      ".fi", ".RE", "every process keeps", "its limits." }, "\n")))
  end)
end)

describe("a result's envelope", function()
  it("is not an answer to print: ZEGO's Code, Message and a null Data; a describe's Data is", function()
    assert.is_false(cli_output.has_content(cjson.decode('{"Code":0,"Message":"success","RequestId":"z",'
      .. '"Data":null}')))
    assert.is_false(cli_output.has_content({ RequestId = "r", Data = {} }))
    assert.is_true(cli_output.has_content(cjson.decode('{"Code":0,"RequestId":"z","Data":{"Status":1}}')))
    assert.is_true(cli_output.has_content({ RequestId = "r", TaskId = "t" }))
  end)
end)
