-- The longest request every operation's rules allow, sent by the clients to
-- the emulator (V3 and V1 for Aliyun, every parameter in the query as the
-- official SDKs send it): each arrives whole and is answered by the
-- operation, never refused for its size (nginx's default buffers answered
-- HTTP 414 at 8 KB). A value is made longest in bytes on the wire: every
-- byte of a multi-byte character is percent-encoded to three.
local emu = require "spec.helpers.emulator"
local streamctl = require "streamctl"
local sequence = require "streamctl.engine.sequence"

-- (the default timeouts, 10 s and 5 s to connect, times process.slowdown(): what is tested is that
-- the longest request arrives whole and is answered, not how fast valgrind's run sends it)
local SLOW = require("spec.helpers.process").slowdown()
-- The time of every field (a start 60 s on, an end an hour on) is NOW, where the clients' clock and the
-- emulator's stand (fresh(): pinned): however long the file runs, a task to start 60 s on has not started
-- (a slow run's real time started it, and its callback event joined the log).
local NOW = os.time()
local function clock() return NOW end
local ALI = { access_key_id = "LTAIemulatorKey", access_key_secret = "emulator-secret", clock = clock,
              retry = { base_ms = 1, throttle_base_ms = 1 }, timeout_ms = 10000 * SLOW, connect_timeout_ms = 5000 * SLOW }
local ZEGO = { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef", clock = clock,
               retry = { base_ms = 1, throttle_base_ms = 1 }, timeout_ms = 10000 * SLOW, connect_timeout_ms = 5000 * SLOW }

local CLEF = "\240\157\132\158" -- U+1D11E, four bytes
local E_ACUTE = "\195\169"      -- U+00E9, two bytes

-- `head` and then four-byte characters up to `chars` characters in all.
local function chars(head, n)
  return head .. string.rep(CLEF, n - #head)
end

-- A text of exactly `bytes` bytes, all of it two-byte characters.
local function bytes(n)
  return string.rep(E_ACUTE, math.floor(n / 2)) .. string.rep("a", n % 2)
end

-- The longest value a field's shape allows (streamctl.base.validate): a
-- name of its length limit in letters; a domain of 253 bytes, four labels.
local SHAPED = {
  name = function(f) return string.rep("n", f.max_len or 256) end,
  domain = function()
    local l63 = string.rep("d", 63)
    return l63 .. "." .. l63 .. "." .. l63 .. "." .. string.rep("d", 61)
  end,
}

-- The longest value of a field, from its schema: the longest enum value, a
-- text at its length limit (or its shape's), the largest integer, the most items.
local function longest(f)
  if f.shape then
    local v = SHAPED[f.shape](f)
    if f.type == "strings" then
      local t = {}
      for i = 1, f.max_items or 2 do t[i] = v end
      return t
    end
    return v
  elseif f.enum then
    local best = f.enum[1]
    for _, e in ipairs(f.enum) do if #e > #best then best = e end end
    return best
  elseif f.type == "string" then
    if f.max_chars then return chars(f.prefix and f.prefix[#f.prefix] or "", f.max_chars) end
    return bytes(f.max_len or 256)
  elseif f.type == "integer" then
    return f.max or 9007199254740991
  elseif f.type == "time" then
    return NOW + 3600
  elseif f.type == "yesno" then
    return "yes"
  elseif f.type == "strings" then
    local item = f.max_chars and chars("", f.max_chars) or bytes(f.max_len or 256)
    local t = {}
    for i = 1, f.max_items or 2 do t[i] = item end
    return t
  end
  return nil
end

local URL_SOURCES = {}
for i = 1, 30 do URL_SOURCES[i] = chars("https://h/" .. i, 2000) end

-- What each operation's rules require beyond their lengths (cross-field
-- rules, URL schemes, times), and the outcome the emulator gives to the
-- longest request ("ok", or the code it answers: the request was read).
local OVERRIDES = {
  create_live_pull_to_push = {
    fields = { source_type = "url", source_protocol = false, source_urls = URL_SOURCES,
               dst_url = chars("rtmp://h/", 2000), callback_url = chars("https://h/", 2000),
               start_time = NOW + 60, end_time = NOW + 3600, retry_interval = 300 },
    outcome = "ok",
  },
  update_live_pull_to_push = {
    fields = { source_urls = URL_SOURCES, callback_url = chars("https://h/", 2000),
               start_time = NOW + 60, end_time = NOW + 3600 },
    outcome = "CodeTaskNotExist",
  },
  stop_live_pull_to_push = { outcome = "CodeTaskNotExist" },
  restart_live_pull_to_push = { outcome = "CodeTaskNotExist" },
  delete_live_pull_to_push = { outcome = "CodeTaskNotExist" },
  describe_live_pull_to_push = { outcome = "CodeTaskNotExist" },
  forbid_live_stream = { fields = { resume_time = NOW + 3600 } },
  forbid_live_streams = { fields = { resume_time = NOW + 3600 } },
  forbid_cdn_live_stream = { fields = { resume_time = NOW + 3600 } },
  -- the largest Sequence a caller may give (a fresh client for each)
  resume_rtc_stream = { fields = { sequence = sequence.MAX_GIVEN } },
  forbid_rtc_stream = { fields = { sequence = sequence.MAX_GIVEN } },
  describe_rtc_stream_state = { fields = { sequence = sequence.MAX_GIVEN } },
  -- (a range its page allows; region codes and feature names joined by commas, at their 1 KiB)
  describe_live_streams_publish_list = { fields = { start_time = NOW, end_time = NOW + 3600 } },
  describe_live_streams_control_history = { fields = { start_time = NOW, end_time = NOW + 3600 } },
  set_live_stream_block = { fields = { location_list = string.rep("CN,", 340) .. "CN" } },
  -- (a method the emulator does not model: read whole, then refused by its gateway)
  describe_live_domain_configs = { fields = { function_names = string.rep("aliauth,", 127) .. "aliauth" },
                                   outcome = "InvalidApi.NotFound", rejected = true },
}

local function fields_of(m)
  local o = OVERRIDES[m.name] or {}
  local fields = {}
  for _, f in ipairs(m.fields) do
    if f.param then -- (local options such as concurrency are not sent)
      local v = o.fields and o.fields[f.name]
      if v == nil then v = longest(f) end
      if v ~= false then fields[f.name] = v end
    end
  end
  return fields, o.outcome or "ok"
end

describe("the longest valid request of every operation", function()
  local server

  lazy_setup(function()
    server = emu.start {}
  end)

  lazy_teardown(function()
    if server then server:stop() end
  end)

  -- The emulator as new, its clock pinned at NOW.
  local function fresh()
    server:reset()
    server:clock { now = NOW }
  end

  before_each(fresh)

  -- Sends method `m` with its longest fields (or `fields`) through `cli`, then checks the
  -- emulator's log: one request per call, read whole (its parameters as sent)
  -- and answered by the operation.
  local function check(cli, provider, m, fields)
    local default, outcome = fields_of(m)
    local rejected = (OVERRIDES[m.name] or {}).rejected
    fields = fields or default
    local result, err = cli[m.name](cli, fields)
    local entries = server:log { provider = provider }
    assert.is_true(#entries >= 1, m.name .. ": nothing arrived (" .. tostring(err) .. ")")
    for _, e in ipairs(entries) do
      assert.equal(m.action, e.action, m.name)
      assert.is_true(e.verdict == "ok" or e.verdict == "error" or (rejected and e.verdict == "rejected"),
        m.name .. ": " .. tostring(e.verdict) .. " " .. tostring(e.message))
      assert.equal(outcome, (e.code == "OK" or e.code == 0) and "ok" or e.code, m.name)
    end
    if outcome == "ok" then
      assert.is_truthy(result, m.name .. ": " .. tostring(err))
      if m.list then assert.equal(0, result.failed, m.name) end
    else
      assert.equal(outcome, err.code, m.name)
    end
    return entries
  end

  for _, version in ipairs { "v3", "v1" } do
    it("Aliyun, " .. version .. ": every operation", function()
      local cli = assert(streamctl.aliyun.new(setmetatable({ endpoint = server.aliyun_url,
        signature_version = version }, { __index = ALI })))
      local seen = 0
      for _, m in ipairs(streamctl.aliyun.methods()) do
        fresh()
        local entries = check(cli, "aliyun", m)
        seen = seen + 1
        if m.name == "create_live_pull_to_push" then
          -- the whole create arrived: 30 URLs of 2,000 characters, as sent
          local p = entries[1].params
          assert.equal(chars("rtmp://h/", 2000), p.DstUrl)
          assert.equal(chars("https://h/", 2000), p.CallbackUrl)
          assert.equal(URL_SOURCES[30], server:state().aliyun.tasks[next(server:state().aliyun.tasks)]
            .TaskInfo.SourceUrls[30])
        end
      end
      assert.equal(20, seen) -- every named and batch method (a new one needs its longest request here)
    end)
  end

  it("ZEGO: every operation (20 IDs of 256 bytes a call)", function()
    local seen = 0
    for _, m in ipairs(streamctl.zego.methods()) do
      fresh()
      local cli = assert(streamctl.zego.new(setmetatable({ endpoint = server.zego_url }, { __index = ZEGO })))
      local fields = fields_of(m)
      if m.list then
        local ids = {}
        for i = 1, 20 do ids[i] = string.rep("n", 253) .. string.format("%03d", i) end
        fields.stream_ids = ids
      end
      local entries = check(cli, "zego", m, fields)
      if m.list then
        assert.equal(1, #entries)
        assert.equal(20, #entries[1].streams)
        assert.equal(string.rep("n", 253) .. "020", entries[1].streams[20])
      end
      seen = seen + 1
    end
    assert.equal(12, seen)
  end)
end)
