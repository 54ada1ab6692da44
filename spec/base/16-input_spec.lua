-- tier: unit
-- Every text a caller gives has a length and a character rule, checked
-- before anything is sent: names (256 bytes, no control characters, UTF-8),
-- URLs (2000 characters), credentials (256 bytes, a token 16 KiB, printable
-- ASCII where they reach a header), and what `call` passes (8 KiB, UTF-8).
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local validate = require "streamctl.base.validate"
local checks = require "spec.helpers.checks"

local NOW = 1700000000
local BIG = string.rep("x", 10 * 1024 * 1024)

local function client(mod, opts)
  return checks.scripted_client(mod, NOW, opts, function() error("nothing may be sent") end)
end

local STREAM = { domain_name = "d.example", app_name = "live", stream_name = "s" }
local function with(t, k, v)
  local c = {}
  for a, b in pairs(t) do c[a] = b end
  c[k] = v
  return c
end

describe("fields", function()
  local ali, z = client(aliyun), client(zego)
  -- { client, method, fields, message }
  local cases = {
    { ali, "resume_live_stream", with(STREAM, "stream_name", BIG),
      "field 'stream_name' must be at most 256 bytes (got 10485760)" },
    { ali, "resume_live_stream", with(STREAM, "stream_name", string.rep("y", 100 * 1024)),
      "field 'stream_name' must be at most 256 bytes (got 102400)" },
    { ali, "resume_live_stream", with(STREAM, "stream_name", "a\tb"),
      "field 'stream_name' must not contain control characters (TAB, DEL...)" },
    { ali, "resume_live_stream", with(STREAM, "app_name", "a\127b"),
      "field 'app_name' must not contain control characters (TAB, DEL...)" },
    { ali, "resume_live_stream", with(STREAM, "domain_name", "d\0.example"),
      "field 'domain_name' must not contain CR, LF or NUL" },
    { ali, "resume_live_stream", with(STREAM, "stream_name", "caf\233"),
      "field 'stream_name' must be valid UTF-8" },
    { ali, "forbid_live_streams", { domain_name = "d", app_name = "a", stream_names = { "ok", "\255" } },
      "field 'stream_names' item 2 must be valid UTF-8" },
    { ali, "forbid_live_streams", { domain_name = "d", app_name = "a", stream_names = { BIG } },
      "field 'stream_names' item 1 must be at most 256 bytes (got 10485760)" },
    { ali, "create_live_pull_to_push", { region = "cn-shanghai", source_type = "url", source_urls = { "https://a/b" },
      dst_url = "rtmp://x/y/" .. BIG, start_time = NOW, end_time = NOW + 60 },
      "field 'dst_url' must be at most 2000 characters (got more)" },
    { z, "resume_rtc_stream", { stream_id = BIG }, "field 'stream_id' must be at most 256 bytes (got 10485760)" },
    { z, "resume_rtc_streams", { stream_ids = { "a", "b\tc" } },
      "field 'stream_ids' item 2 must not contain control characters (TAB, DEL...)" },
  }
  for i, case in ipairs(cases) do
    it(string.format("#%d %s", i, case[4]), function()
      local res, err = case[1][case[2]](case[1], case[3])
      assert.is_nil(res)
      assert.same({ "InvalidParameter", "validation", case[4] }, { err.code, err.kind, err.message })
    end)
  end

  it("take any UTF-8 text within the rules, where a field is text; names keep their shape", function()
    local sent = 0
    local c = checks.scripted_client(aliyun, NOW, {}, function()
      sent = sent + 1
      return checks.reply(200, '{"RequestId":"r"}')
    end)
    assert(c:describe_live_pull_to_push_list { region = "cn-shanghai", task_name = "直播-1 ünïcödé 🎥" })
    assert(c:resume_live_stream(with(STREAM, "stream_name", string.rep("z", 256))))
    assert.equal(2, sent)
    local _, err = c:resume_live_stream(with(STREAM, "stream_name", "直播-1"))
    assert.equal("field 'stream_name' must hold only letters, digits, '-' and '_' (found a non-ASCII character "
      .. "(U+76F4) at byte 1)", err.message)
    assert.equal(2, sent)
  end)
end)

describe("credentials", function()
  local function refused(mod, opts)
    local c, err = mod.new(opts)
    assert.is_nil(c)
    return err.message
  end
  it("have a length, and what reaches a header is printable ASCII", function()
    assert.equal("option 'access_key_id' must be at most 256 bytes (got 10485760)",
      refused(aliyun, { access_key_id = BIG, access_key_secret = "s" }))
    assert.equal("option 'access_key_id' must be printable ASCII",
      refused(aliyun, { access_key_id = "A\tK", access_key_secret = "s" }))
    assert.equal("option 'access_key_secret' must be at most 256 bytes (got 10485760)",
      refused(aliyun, { access_key_id = "AK", access_key_secret = BIG }))
    assert.equal("option 'security_token' must be at most 16384 bytes (got 20000)",
      refused(aliyun, { access_key_id = "AK", access_key_secret = "s", security_token = string.rep("t", 20000) }))
    assert(aliyun.new { access_key_id = "AK", access_key_secret = "s", security_token = string.rep("t", 4096) })
    assert.equal("option 'server_secret' must be at most 256 bytes (got 10485760)",
      refused(zego, { app_id = 1, server_secret = BIG }))
  end)
end)

describe("call and prepare", function()
  it("take values of at most 8 KiB of UTF-8, and a named method's field rule for the parameters it sets", function()
    local c = client(aliyun)
    local _, err = c:call("ResumeLiveStream", { LiveStreamType = "publisher", DomainName = "d", AppName = "a",
                                                StreamName = BIG })
    assert.equal("parameter 'StreamName' must be at most 256 bytes (got 10485760)", err.message)
    -- (a method streamctl has no field rules for: its parameters 8 KiB of UTF-8)
    _, err = c:call("DescribeLiveDomainDetail", { DomainName = BIG })
    assert.equal("parameter 'DomainName' must be at most 8192 bytes (got 10485760)", err.message)
    _, err = c:prepare("DescribeLiveDomainDetail", { DomainName = "\192\128" })
    assert.equal("parameter 'DomainName' must be valid UTF-8", err.message)
    _, err = c:prepare("ResumeLiveStream", { LiveStreamType = "publisher", DomainName = "d", AppName = "a",
                                             StreamName = "\192\128" })
    assert.equal("parameter 'StreamName' must be valid UTF-8", err.message)
    _, err = c:call("ForbidLiveStream", { LiveStreamType = "publisher", DomainName = { "ok", BIG }, AppName = "a",
                                          StreamName = "s" })
    assert.equal("parameter 'DomainName' item 2 must be at most 256 bytes (got 10485760)", err.message)
  end)
end)

describe("validate.is_utf8", function()
  for text, want in pairs {
    [""] = true, ["plain"] = true, ["\195\169"] = true, ["\226\130\172"] = true, ["\240\159\142\165"] = true,
    ["\244\143\191\191"] = true,      -- U+10FFFF
    ["\192\175"] = false,             -- overlong "/"
    ["\224\128\175"] = false,         -- overlong, 3 bytes
    ["\237\160\128"] = false,         -- a surrogate (U+D800)
    ["\244\144\128\128"] = false,     -- beyond U+10FFFF
    ["\195"] = false, ["\226\130"] = false, -- cut short
    ["\128"] = false, ["\255"] = false, ["a\195(b"] = false,
  } do
    it(string.format("%q is %s", text, want and "UTF-8" or "not UTF-8"), function()
      assert.equal(want, validate.is_utf8(text))
    end)
  end
end)

describe("core.text_flaws", function()
  local core = require "streamctl.core"
  it("says in one pass what a text holds: 1 CR/LF/NUL, 2 other control characters, 4 not UTF-8", function()
    assert.same({ 0, 1, 1, 1, 2, 2, 4, 3, 7, 0 }, {
      core.text_flaws("plain ünïcödé 🎥"), core.text_flaws("a\r"), core.text_flaws("a\n"), core.text_flaws("a\0"),
      core.text_flaws("a\tb"), core.text_flaws("\127"), core.text_flaws("caf\233"), core.text_flaws("\n\t"),
      core.text_flaws("\0\t\255"), core.text_flaws(""),
    })
  end)

  it("the same, a byte at a time, for any byte at any place of printable text (read eight at a time)", function()
    -- (the rule byte by byte: each of the 256 bytes alone among printable ASCII, at each place of texts
    -- of 1 to 19 bytes; UTF-8 as validate.is_utf8 has it)
    local function flaws(s)
      local f = 0
      if s:find("[\r\n%z]") then f = f + 1 end
      if s:find("[\1-\8\9\11\12\14-\31\127]") then f = f + 2 end
      if not validate.is_utf8(s) then f = f + 4 end
      return f
    end
    local checked, wrong = 0, {}
    for b = 0, 255 do
      for len = 1, 19 do
        for at = 1, len do
          local s = string.rep("x", at - 1) .. string.char(b) .. string.rep("~", len - at)
          local want, got = flaws(s), core.text_flaws(s)
          -- (compared here, the differences asserted once: an assert a row cost more than the row)
          if want ~= got then wrong[#wrong + 1] = string.format("byte %d at %d of %d: %d, not %d", b, at, len, got, want) end
          checked = checked + 1
        end
      end
    end
    assert.same({}, wrong)
    assert.equal(256 * 190, checked)
    assert.same({ 0, 0, 4 }, { core.text_flaws(string.rep(" ~", 40)), core.text_flaws(string.rep("caf\195\169", 9)),
      core.text_flaws(string.rep("abcdefg", 3) .. "\255") })
  end)
end)
