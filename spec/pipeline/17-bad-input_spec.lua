-- tier: unit
-- The bad-input matrix: every field of every method of both providers, each
-- given every kind of wrong value (types, NaN and infinities, negative and
-- huge numbers, empty and 10 MB strings, NUL, CR/LF, TAB, invalid UTF-8,
-- values outside an enum, lists of the wrong shape), and unknown fields.
-- Each row must end in an InvalidParameter error that names the field, with
-- nothing sent and nothing raised. The rows are made from the methods'
-- schemas (streamctl.<provider>.methods()), so a new field is covered by
-- being declared.
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local checks = require "spec.helpers.checks"

local NOW = 1700000000
local BIG = string.rep("x", 10 * 1024 * 1024)
local NAN, INF = 0 / 0, math.huge
local unpack = table.unpack or unpack -- luacheck: ignore 143 (5.1's global)

-- A valid value of each field (by name), for the fields a row does not spoil.
local GOOD = {
  domain_name = "d.example", app_name = "live", stream_name = "s", region = "cn-shanghai", task_id = "T1",
  source_type = "url", source_urls = { "https://cdn.example.com/a.mp4" }, dst_url = "rtmp://push.example/live/y",
  start_time = NOW + 60, end_time = NOW + 3600, stream_id = "s", stream_ids = { "a", "b" },
  stream_names = { "a", "b" }, function_names = "aliauth", block_type = "blacklist", location_list = "CN",
  room_id = "r1", user_ids = { "u1" },
}

-- Wrong values for a field of type `t` (with the spec `f` for its bounds; `is_list`: a batch's list).
local function bad_values(f, is_list)
  -- (a batch's list may be a function: a streamed list, spec/21's)
  local common = is_list and { {}, NAN, INF } or { {}, function() end, NAN, INF }
  -- (a batch's guard: true or a table of its limits, an empty one the defaults)
  -- (a batch's trace: a traceparent string or a table of its headers; one breaking the header's rule is
  -- a new trace, as the W3C's rule says, not a refusal)
  if f.name == "trace" then
    return { 12, true, function() end, { traceparent = 1 }, { tracestate = false }, { other = "x" } }
  end
  if f.name == "guard" then
    return { "yes", 1, function() end, NAN, { max_forbid = -1 }, { max_resume = 1.5 }, { confirm = "yes" },
             { bogus = 1 } }
  end
  local by_type = {
    string = { 12, true, "", BIG, "a\0b", "a\r\nb", "a\tb", "a\127b", "\255\254", "caf\233" },
    integer = { "abc", "1.5", 1.5, -INF, 2 ^ 60, true },
    number = { "abc", true, -INF },
    time = { "tomorrow", "2026-13-01T00:00:00Z", -1, 1.5, -INF, BIG, true },
    strings = { "a", { "" }, { 12 }, { BIG }, { "\255" }, { "a\tb" }, { [2] = "x" }, { a = "x" } },
    yesno = { "maybe", 1, "" },
    boolean = { "true", 1 },
  }
  local out = {}
  for _, v in ipairs(common) do out[#out + 1] = v end
  for _, v in ipairs(by_type[f.type] or {}) do
    if not (v == "" and f.allow_empty) then out[#out + 1] = v end -- (a task may be named "")
  end
  if f.type == "integer" and f.min then out[#out + 1] = f.min - 1 end
  if f.type == "integer" and f.max then out[#out + 1] = f.max + 1 end
  if f.enum then out[#out + 1] = "not-" .. f.enum[1] end
  if f.min_items then out[#out + 1] = {} end
  return out
end

local function show(v)
  if type(v) == "string" then return #v > 20 and ("a string of " .. #v .. " bytes") or string.format("%q", v) end
  if type(v) == "table" then
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return "a table of " .. n
  end
  return tostring(v)
end

for _, p in ipairs { { "aliyun", aliyun }, { "zego", zego } } do
  local provider, mod = p[1], p[2]
  describe(provider .. " methods, every field spoiled", function()
    local sent = 0
    local client = checks.scripted_client(mod, NOW, {}, function()
      sent = sent + 1
      return checks.reply(200, provider == "zego" and '{"Code":0,"Message":"ok","RequestId":"z"}'
        or '{"RequestId":"r","TaskId":"T1","StreamUrls":{"StreamUrl":[]},"TotalNum":0}')
    end)
    for _, m in ipairs(mod.methods()) do
      -- The valid base: every required field, and one setting for an update.
      local base = {}
      for _, f in ipairs(m.fields) do
        if f.required or (m.name == "update_live_pull_to_push" and f.name == "end_time") then
          base[f.name] = assert(GOOD[f.name], "no good value for " .. f.name)
        end
      end
      it(m.name .. ": the valid base is sent", function()
        sent = 0
        local res, err = client[m.name](client, base)
        assert.truthy(res, tostring(err))
        assert.is_true(sent >= 1)
      end)
      it(m.name .. ": every wrong value of every field is refused by name, nothing sent", function()
        sent = 0
        local rows = 0
        for _, f in ipairs(m.fields) do
          if f.type ~= "function" then
            for _, v in ipairs(bad_values(f, f.name == m.list)) do
              local fields = {}
              for k, x in pairs(base) do fields[k] = x end
              fields[f.name] = v
              local ok, res, err = pcall(client[m.name], client, fields)
              local label = string.format("%s.%s = %s", m.name, f.name, show(v))
              assert.is_true(ok, label .. " raised: " .. tostring(res))
              assert.is_nil(res, label .. " was taken")
              assert.equal("InvalidParameter", err.code, label)
              -- (named whole, or a table's option by its path: 'guard.max_forbid')
              assert.truthy(err.message:find("'" .. f.name .. "'", 1, true)
                or err.message:find("'" .. f.name .. ".", 1, true), label .. ": " .. err.message)
              rows = rows + 1
            end
          end
        end
        local fields = {}
        for k, x in pairs(base) do fields[k] = x end
        fields.no_such_field = "x"
        local _, err = client[m.name](client, fields)
        assert.equal("InvalidParameter", err.code)
        assert.truthy(err.message:find("'no_such_field' is not a field", 1, true), err.message)
        assert.equal(0, sent, m.name .. ": something was sent")
        assert.is_true(rows > 5)
      end)
      it(m.name .. ": a table is required", function()
        for _, v in ipairs { "x", 5, true } do
          local ok, res, err = pcall(client[m.name], client, v)
          assert.is_true(ok)
          assert.is_nil(res)
          assert.equal("InvalidParameter", err.code)
        end
      end)
    end
  end)
end

describe("ZEGO batches of any size", function()
  it("take 21, 10,000 and repeated IDs, 20 a call, repeats counted once; 0 IDs refused", function()
    local calls, ids_sent = 0, 0
    local z = checks.scripted_client(zego, NOW, { rate_limits = false }, function(req)
      calls = calls + 1
      for _ in req.url:gmatch("StreamId%%5B%%5D=") do ids_sent = ids_sent + 1 end
      return checks.reply(200, '{"Code":0,"Message":"ok","RequestId":"z"}')
    end)
    local function ids(n, dup)
      local out = {}
      for i = 1, n do out[i] = "id-" .. (dup and math.ceil(i / 2) or i) end
      return out
    end
    local r = assert(z:forbid_rtc_streams { stream_ids = ids(21) })
    assert.same({ 21, 2, 21 }, { r.succeeded, calls, ids_sent })
    calls, ids_sent = 0, 0
    r = assert(z:forbid_rtc_streams { stream_ids = ids(10000) })
    assert.same({ 10000, 500, 10000 }, { r.succeeded, calls, ids_sent })
    calls, ids_sent = 0, 0
    r = assert(z:resume_rtc_streams { stream_ids = ids(40, true) })
    assert.same({ 20, 20, 1, 20 }, { r.total, r.duplicates, calls, ids_sent })
    local res, err = z:resume_rtc_streams { stream_ids = {} }
    assert.is_nil(res)
    assert.equal("field 'stream_ids' must have at least 1 item (got 0)", err.message)
    res, err = z:call("ResumeRTCStreams", { StreamId = ids(21), Sequence = "1" })
    assert.is_nil(res)
    assert.equal("parameter 'StreamId' must hold at most 20 items (got 21)", err.message) -- (its page's limit)
  end)
end)

describe("call, with the service's names", function()
  it("keeps a named method's text rule for the parameters it sets, and the rest to 8 KiB of UTF-8", function()
    local sent = 0
    local a = checks.scripted_client(aliyun, NOW, {}, function()
      sent = sent + 1
      return checks.reply(200, '{"RequestId":"r"}')
    end)
    local base = { DomainName = "d.example", AppName = "live", LiveStreamType = "publisher" }
    for _, row in ipairs {
      { "a\tb", "parameter 'StreamName' must not contain control characters (TAB, DEL...)" },
      { "a\r\nb", "parameter 'StreamName' must not contain CR, LF or NUL" },
      { string.rep("s", 257), "parameter 'StreamName' must be at most 256 bytes (got 257)" },
      { "\255", "parameter 'StreamName' must be valid UTF-8" },
    } do
      local p = { StreamName = row[1] }
      for k, v in pairs(base) do p[k] = v end
      local res, err = a:call("ResumeLiveStream", p)
      assert.is_nil(res)
      assert.same({ "InvalidParameter", row[2] }, { err.code, err.message })
    end
    assert.equal(0, sent)
    -- A parameter of a method streamctl has no rules for: only the general rule.
    assert.truthy(a:call("DescribeLiveDomainDetail", { DomainName = "a\tb" }))
    -- Parts of a stream left out: refused by the published method, naming each, nothing sent (never raised).
    local _, err = a:call("ResumeLiveStream", { LiveStreamType = "publisher", StreamName = "s" })
    assert.equal("parameters 'AppName', 'DomainName' are required", err.message)
    assert.equal(1, sent)
  end)
end)

describe("streamctl.core", function()
  local core = require "streamctl.core"
  -- { function name, arguments }: each a programming mistake, raised as a bad argument.
  local rows = {
    { "percent_encode", { nil } }, { "percent_encode", { {} } },
    { "canonical_query", { "a=b" } }, { "canonical_query", { nil } },
    { "aliyun_string_to_sign_v1", { "GET", "x" } }, { "aliyun_sign_v1", { "GET", {}, nil } },
    { "aliyun_sign_v1", { "GET", {}, 12 } }, { "aliyun_sign_v3", { "x" } },
    { "zego_sign", { "x", "nonce", "secret", "1" } }, { "zego_sign", { 1, nil, "s", "1" } },
    { "sha256_hex", { nil } }, { "random_hex", { "x" } }, { "random_hex", { -1 } },
    { "random_id", { "x" } }, { "random_id", { 0 } },
    { "utc_timestamp", { "x" } }, { "secret", { nil } }, { "secret", { {} } },
  }
  for _, row in ipairs(rows) do
    it(row[1] .. " raises a bad argument, never crashes", function()
      local ok, err = pcall(core[row[1]], unpack(row[2], 1, 4))
      assert.is_false(ok)
      assert.truthy(tostring(err):find("bad argument", 1, true), tostring(err))
    end)
  end
  it("parse_utc_timestamp answers nil and why for any text", function()
    for _, s in ipairs { "", BIG, "2026-02-30T00:00:00Z", "\0", "9999-99-99T99:99:99Z" } do
      local t, why = core.parse_utc_timestamp(s)
      assert.is_nil(t)
      assert.equal("string", type(why))
    end
  end)
  it("percent_encode takes 10 MB and NUL bytes", function()
    assert.equal(3 * #BIG, #core.percent_encode(string.rep("\0", #BIG)))
  end)
end)
