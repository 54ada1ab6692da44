-- tier: unit
-- A provider's rules are a written interface (streamctl.pipeline.provider),
-- checked when its client class is defined: a rule left out or broken raises
-- there, naming the provider, the key and the rule. Each operation says what
-- a call does (`effect`), and the command's audit log and blast-radius guard
-- read that, never the action's name (issue 51).
local client = require "streamctl.pipeline.client"
local provider = require "streamctl.pipeline.provider"
local parser = require "streamctl.cli.parser"
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"

-- A provider of one operation, every rule given (a fake: it is never sent).
local function acme(change)
  local rules = {
    provider = "acme",
    defaults = { endpoint = "https://api.acme.example" },
    variables = { { "key_id", "ACME_KEY_ID" }, { "key_secret", "ACME_KEY_SECRET" } },
    options = {},
    operations = { DescribeAndDelete = { effect = "change", method = "POST", idempotent = false, cap = 5 } },
    methods = { describe_and_delete = { action = "DescribeAndDelete", fields = {} } },
    common_params = {},
    redact = { query = {} },
    streams = function() return nil end,
    array = function(name, list) return name, table.concat(list, ",") end,
    configure = function() return {} end,
    build = function() return { method = "POST", url = "https://api.acme.example/", headers = {} } end,
    decode = function(_, _, res) return res end,
    nonce = function() return "n" end,
    nonce_rule = function() return nil end,
    account = function() return "acme" end,
    secrets = function() return {} end,
  }
  if change then change(rules) end
  return rules
end

-- The message `define` raises for `rules`, without the place it was raised from.
local function refusal(rules)
  local ok, err = pcall(client.define, rules)
  assert.is_false(ok, "define took rules that break the interface")
  return (tostring(err):gsub("^[^:]+:%d+: ", ""))
end

describe("a provider's rules", function()
  it("of both providers pass the check, and every operation says what a call does", function()
    for _, class in ipairs { aliyun, zego } do
      local effects = {}
      for _, action in ipairs(class.actions()) do
        local effect = class.effect(action)
        assert.truthy(provider.EFFECTS[effect], action)
        effects[#effects + 1] = action .. "=" .. effect
      end
      assert.truthy(#effects > 0)
    end
    assert.same({ "change", "forbid", "read", "read", "resume" }, {
      aliyun.effect("CreateLivePullToPush"), aliyun.effect("ForbidLiveStream"),
      aliyun.effect("DescribeLiveStreamsBlockList"), zego.effect("DescribeRTCStreamState"),
      zego.effect("ResumeCDNLiveStream") })
    assert.is_nil(aliyun.effect("NoSuchAction"))
  end)

  it("define a client class of a provider of one operation (a fake third one)", function()
    local Acme = client.define(acme())
    assert.same({ "DescribeAndDelete" }, Acme.actions())
    assert.equal("change", Acme.effect("DescribeAndDelete"))
    local methods = Acme.methods()
    assert.same({ "describe_and_delete", "DescribeAndDelete", "change" },
      { methods[1].name, methods[1].action, methods[1].effect })
  end)

  it("are refused when a rule is broken, naming the provider, the key and the rule", function()
    for _, case in ipairs {
      { function(r) r.operations.DescribeAndDelete.effect = nil end, "streamctl: provider acme: operation "
        .. "DescribeAndDelete's effect must be read, forbid, resume or change (what a call does: the command's "
        .. "guard and audit log read it)" },
      { function(r) r.operations.DescribeAndDelete.effect = "write" end, "streamctl: provider acme: operation "
        .. "DescribeAndDelete's effect must be read, forbid, resume or change (what a call does: the command's "
        .. "guard and audit log read it)" },
      { function(r) r.operations.DescribeAndDelete.method = "PUT" end,
        "streamctl: provider acme: operation DescribeAndDelete's method must be GET or POST" },
      { function(r) r.operations.DescribeAndDelete.idempotent = nil end,
        "streamctl: provider acme: operation DescribeAndDelete's idempotent must be true or false" },
      { function(r) r.operations.DescribeAndDelete.cap = 0 end, "streamctl: provider acme: operation "
        .. "DescribeAndDelete's cap must be a number > 0 (requests per second) or nil" },
      { function(r) r.operations.DescribeAndDelete.recover = true end,
        "streamctl: provider acme: operation DescribeAndDelete's recover must be a table" },
      { function(r) r.methods.describe_and_delete.action = "Delete" end,
        "streamctl: provider acme: method describe_and_delete must name one of the operations as its action" },
      { function(r) r.batches = { all = { action = "DescribeAndDelete" } } end,
        "streamctl: provider acme: batch all's fields must be a table" },
      { function(r) r.build = nil end, "streamctl: provider acme: build must be a function" },
      { function(r) r.caps = "yes" end, "streamctl: provider acme: caps must be a function or nil" },
      { function(r) r.stamp = { param = "Sequence", ids = function() end } end,
        "streamctl: provider acme: stamp must be nil or { param = name, ids = function, take = function[, renew = "
          .. "function, fresh_ms = milliseconds > 0][, applies = function] }" },
      { function(r) r.stamp = { param = "Sequence", ids = function() end, take = function() end,
                                renew = function() end, fresh_ms = 0 / 0 } end,
        "streamctl: provider acme: stamp must be nil or { param = name, ids = function, take = function[, renew = "
          .. "function, fresh_ms = milliseconds > 0][, applies = function] }" },
      { function(r) r.redact = nil end, "streamctl: provider acme: redact must be a table" },
      { function(r) r.defaults = {} end, "streamctl: provider acme: defaults.endpoint must be a URL" },
      { function(r) r.variables = { { "key_id", "ACME_KEY_ID" } } end, "streamctl: provider acme: variables[2] must "
        .. "be { option, VARIABLE } (a credential option and the environment variable it is read from; a pair at "
        .. "least)" },
      { function(r) r.variables[1][2] = "acme key" end, "streamctl: provider acme: variables[1] must "
        .. "be { option, VARIABLE } (a credential option and the environment variable it is read from; a pair at "
        .. "least)" },
      { function(r) r.provider = "Acme Cloud" end,
        "streamctl: provider Acme Cloud: provider must be a name of lower-case letters and digits" },
    } do
      assert.equal(case[2], refusal(acme(case[1])))
    end
  end)
end)

describe("the command's guard", function()
  it("reads what an operation does, never its name", function()
    -- a write named like a look-up is audited; a look-up named like a forbid is not
    assert.same({}, parser.guards_of { action = "DescribeAndDelete", effect = "change" })
    assert.same({ forbid = false, resume = false },
      parser.guards_of { action = "DescribeAndDelete", effect = "change", list = "ids" })
    assert.is_nil(parser.guards_of { action = "ForbidLiveStream", effect = "read" })
    assert.same({ forbid = true, resume = false },
      parser.guards_of { action = "DescribeThenBan", effect = "forbid", list = "ids" })
    assert.same({ forbid = false, resume = true },
      parser.guards_of { action = "Unban", effect = "resume", list = "ids" })
    -- an effect not known (an action the provider lacks, for `call`) changes: the safe side
    assert.is_true(parser.changes(nil))
    assert.is_false(parser.changes("read"))
  end)

  it("of every command of both providers follows its operation's effect", function()
    for _, class in ipairs { aliyun, zego } do
      for _, m in ipairs(class.methods()) do
        local guards = parser.guards_of(m)
        if m.effect == "read" then
          assert.is_nil(guards, m.name)
        else
          assert.is_table(guards, m.name)
          if m.list then
            assert.same({ forbid = m.effect == "forbid", resume = m.effect == "resume" }, guards, m.name)
          end
        end
      end
    end
  end)
end)

describe("a store backend", function()
  -- One of its own (its file: a module in package.preload) and one line in
  -- streamctl.pipeline.stores' list: a client given its option keeps its
  -- rate limits and Sequences there, and the client and the pacing name it nowhere.
  local stores = require "streamctl.pipeline.stores"
  local ratelimit = require "streamctl.engine.ratelimit"
  local sequence = require "streamctl.engine.sequence"
  local log

  setup(function()
    package.preload["spec.fake_backend"] = function()
      local M = {}
      function M.check(v)
        if type(v) ~= "string" or v == "" then return nil, "must be a bucket's name" end
        return v
      end
      function M.handle(name) return { name = name, closed = false, close = function(h) h.closed = true end }, true end
      function M.ratelimit_store(h, o)
        local inner = ratelimit.memory_store { clock = o.monotonic }
        return { get = function(_, k) log[#log + 1] = h.name .. ":get:" .. k return inner:get(k) end,
                 set = function(_, k, v, ttl) return inner:set(k, v, ttl) end }
      end
      function M.sequence_store(h, prefix)
        local inner = sequence.memory_store()
        return { advance = function(_, k, c)
          log[#log + 1] = h.name .. ":advance:" .. prefix .. k
          return inner:advance(k, c)
        end }
      end
      return M
    end
    table.insert(stores.BACKENDS, { option = "bucket", module = "spec.fake_backend" })
    stores.RULES.bucket = function(v) return require("spec.fake_backend").check(v) end
  end)
  teardown(function()
    table.remove(stores.BACKENDS)
    stores.RULES.bucket = nil
    package.preload["spec.fake_backend"], package.loaded["spec.fake_backend"] = nil, nil
  end)

  it("is its own file and one line: a client keeps its rate limits and Sequences there, and closes it", function()
    log = {}
    -- (a class defined after the line: its options' schema takes the backend's option)
    local rules = {}
    for k, v in pairs(zego._rules) do rules[k] = v end
    local Zego = client.define(rules)
    local _, err = Zego.new { app_id = 1, server_secret = string.rep("s", 32), bucket = "" }
    assert.equal("option 'bucket' must be a bucket's name", err.message)
    -- (it holds the rate limits and Sequences, as every backend does: another holder is refused)
    _, err = Zego.new { app_id = 1, server_secret = string.rep("s", 32), bucket = "b1",
                        rate_limit_store = require("streamctl.engine.ratelimit").memory_store() }
    assert.equal("option 'bucket' holds the rate-limit state; it cannot be combined with 'rate_limit_store'",
      err.message)
    _, err = Zego.new { app_id = 1, server_secret = string.rep("s", 32), bucket = "b1",
                        sequence = require("streamctl.engine.sequence").new {} }
    assert.equal("option 'bucket' holds the Sequences; it cannot be combined with 'sequence'", err.message)
    local z = assert(Zego.new { app_id = 1, server_secret = string.rep("s", 32), bucket = "b1",
      transport = function() return { status = 200, headers = {},
        body = '{"Code":0,"Message":"success","RequestId":"r","Data":null}' } end })
    assert(z:resume_rtc_stream { stream_id = "s1" })
    -- (its slot read from the backend's schedule, and its Sequence taken there)
    local seen = {}
    for _, l in ipairs(log) do seen[l] = true end
    assert.is_true(seen["b1:get:zego:1:ResumeRTCStream"], table.concat(log, " "))
    assert.is_true(seen["b1:advance:zego:1:s1"], table.concat(log, " "))
    local handle = z._stores[1].handle
    z:close()
    assert.is_true(handle.closed)
  end)
end)
