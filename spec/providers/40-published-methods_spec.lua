-- tier: unit
-- Every method the providers publish (streamctl.pipeline.api over
-- src/streamctl/PROVIDER/api.lua): each one's required parameters missing
-- are refused naming each, an unknown parameter is refused, a well-formed
-- dry run is signed and names the action; the checker's rules one by one;
-- the data's generator gives exact bytes from a snapshot's shape.

local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local api = require "streamctl.pipeline.api"

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local NOW = 1767225600 -- 2026-01-01T00:00:00Z

local function ali_client()
  return assert(aliyun.new { access_key_id = "LTAIkey", access_key_secret = "secret",
                             endpoint = "http://127.0.0.1:9", clock = function() return NOW end })
end
local function zego_client()
  return assert(zego.new { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef",
                           endpoint = "http://127.0.0.1:9", clock = function() return NOW end })
end

-- A value of each type, as a well-formed call gives it.
local SAMPLE = { string = "x1", integer = "1", long = "1", number = "1.5", boolean = "true", json = "{}" }

-- Where streamctl's own rules are stricter than the metadata (the actions
-- it declares), a value they take.
local OWN = {
  DomainName = "push.example.com", AppName = "live", StreamName = "s1", LiveStreamType = "publisher",
  Region = "cn-shanghai", TaskId = "t1", StreamId = "s1", ["StreamId[]"] = { "s1" },
  SourceType = "live", SourceProtocol = "rtmp", SourceUrls = { "rtmp://src.example.com/live/s1" },
  DstUrl = "rtmp://push.example.com/live/s1", StartTime = "2026-01-01T00:10:00Z", EndTime = "2026-01-02T00:00:00Z",
  BlockType = "blacklist", LocationList = "CN", FunctionNames = "aliauth", RoomId = "r1", UserId = { "u1" },
}

-- The parameters a well-formed call of published method `m` gives: every
-- required one, of its type (a list's first item, each of its required fields).
local function well_formed(client, action, m)
  local declared = rawget(client._rules.operations, action) ~= nil
  local op, stamp = client._rules.operations[action], client._rules.stamp
  local out = {}
  for _, p in ipairs(m.params) do
    -- (ZEGO's Sequence, where it is the call's decision, is streamctl's to fill)
    local filled = stamp and stamp.param == p.name and (not stamp.applies or stamp.applies(op))
    if p.required and not filled then
      if declared and OWN[p.name] ~= nil then
        out[p.name] = OWN[p.name]
      elseif p.type == "list" and p.fields then
        for _, f in ipairs(p.fields) do
          if f.required or f == p.fields[1] then out[p.name .. ".1." .. f.name] = SAMPLE[f.type] or "x1" end
        end
      elseif p.type == "list" then
        out[p.name] = { p.item_enum and p.item_enum[1] or SAMPLE[p.item] or "x1" }
      else -- (one of its values, or its least, where its page gives them)
        out[p.name] = p.enum and p.enum[1] or p.min and tostring(p.min) or SAMPLE[p.type]
      end
    end
  end
  return out
end

local function required_names(client, action, m)
  local op = client._rules.operations[action]
  local stamp = client._rules.stamp
  local out = {}
  for _, p in ipairs(m.params) do
    local filled = stamp and stamp.param == p.name and (not stamp.applies or stamp.applies(op))
    if p.required and not filled then out[#out + 1] = p.name end
  end
  return out
end

local PROVIDERS = {
  { "aliyun", ali_client, 423, function(req) return req.headers["x-acs-action"] end },
  { "zego", zego_client, 50, function(req) return req.url:match("[?&]Action=([^&]+)") end },
}

for _, pv in ipairs(PROVIDERS) do
  local name, new, count, action_of = pv[1], pv[2], pv[3], pv[4]

  describe(name .. ": every published method", function()
    local client = new()
    local list = client.published()

    it("is listed, " .. count .. " of them, each an operation", function()
      assert.equal(count, #list)
      for _, m in ipairs(list) do
        assert.truthy(client._rules.operations[m.action], m.action)
        assert.equal(client.effect(m.action), m.effect)
      end
    end)

    it("refuses a call without its required parameters, naming each, and one with an unknown parameter; a "
      .. "well-formed dry run is signed and names the action", function()
      local walked, bodies, keys = 0, 0, 0
      for _, m in ipairs(list) do
        local action = m.action
        if m.key then -- (a required key: never sent, SetSnapshotCallbackAuth's CallbackAuthKey)
          local _, err = client:prepare(action, well_formed(client, action, m))
          assert.truthy(err.message:find("parameter '" .. m.key .. "' names a credential", 1, true), err.message)
          keys = keys + 1
        else
          local need = required_names(client, action, m)
          if #need > 0 then
            local _, err = client:check_call(action, {})
            assert.equal("InvalidParameter", err.code, action)
            for _, p in ipairs(need) do
              assert.truthy(err.message:find("'" .. p .. "'", 1, true), action .. ": " .. err.message)
            end
          end
          local good = well_formed(client, action, m)
          local bad = {}
          for k, v in pairs(good) do bad[k] = v end
          bad.Bogus = "1"
          local _, err = client:check_call(action, bad)
          assert.equal("unknown parameter 'Bogus': " .. action .. " takes", err.message:match("^[^:]+: [%w]+ takes"),
            action)
          local req, why = client:prepare(action, good)
          assert.truthy(req, action .. ": " .. tostring(why))
          assert.equal(action, action_of(req), action)
          if m.body then -- (its body's parameters given in the body, none of them in the query)
            for _, p in ipairs(m.params) do
              if p.body and good[p.name] ~= nil then
                local pattern = p.name:gsub("%p", "%%%0")
                assert.truthy(req.body:find('"?' .. pattern .. '["%.=:]'), action .. " " .. p.name)
                assert.falsy(req.url:find("[?&]" .. pattern .. "[.=]"), action .. " " .. p.name)
              end
            end
            bodies = bodies + 1
          end
          walked = walked + 1
        end
      end
      assert.equal(count, walked + keys)
      assert.equal(name == "aliyun" and 25 or 10, bodies)
      assert.equal(name == "aliyun" and 1 or 0, keys)
    end)

    it("has every parameter a named method sends among the published ones", function()
      for _, spec in ipairs(client.methods()) do
        local m = assert(api.method(client._rules, spec.action), spec.action)
        for _, f in ipairs(spec.fields) do
          if f.param then
            local found = false
            for _, p in ipairs(m.params) do if p.name == f.param then found = true end end
            assert.truthy(found, spec.name .. "'s " .. f.param .. " is not published for " .. spec.action)
          end
        end
      end
    end)
  end)
end

describe("a published parameter whose name holds a credential's word", function()
  local encode = require "streamctl.base.encode"

  it("is a cursor or an idempotency token, sent; or a key, refused", function()
    local refused = {}
    for _, pv in ipairs(PROVIDERS) do
      local client = pv[2]()
      for _, m in ipairs(client.published()) do
        for _, p in ipairs(m.params) do
          if encode.is_credential_name(p.name) then refused[p.name] = true end
        end
      end
    end
    assert.same({ AuthKey = true, CallbackAuthKey = true, NotifyAuthKey = true }, refused)
    local a = ali_client()
    local sent = assert(a:check_call("AddCasterEpisodeGroup", {
      CallbackUrl = "http://cb.example.com/", ClientToken = "t1", DomainName = "push.example.com",
      ["Item.1.ItemName"] = "i", RepeatNum = 1, SideOutputUrl = "rtmp://o.example.com/a/b",
      StartTime = "2026-01-01T00:00:00Z" }))
    assert.equal("t1", sent.ClientToken)
    local _, err = a:check_call("SetLiveStreamsNotifyUrlConfig", { DomainName = "push.example.com",
      NotifyUrl = "http://cb.example.com/", NotifyAuthKey = "secret-key" })
    assert.equal("parameter 'NotifyAuthKey' names a credential", err.message:match("^[^(]+"):gsub(" $", ""))
    assert.falsy(err.message:find("secret-key", 1, true))
  end)
end)

describe("a call's parameters, checked by the published method", function()
  local a, z = ali_client(), zego_client()
  local FORBID = { DomainName = "push.example.com", AppName = "live", StreamName = "s1",
                   LiveStreamType = "publisher" }
  local function with(t, more)
    local out = {}
    for k, v in pairs(t) do out[k] = v end
    for k, v in pairs(more) do out[k] = v end
    return out
  end

  it("names an unknown one and the closest published name (case, then the fewest edits)", function()
    local _, err = a:check_call("ForbidLiveStream", with(FORBID, { ResumeTIme = "2030-01-01T00:00:00Z" }))
    assert.equal("unknown parameter 'ResumeTIme' (did you mean 'ResumeTime'?): ForbidLiveStream takes AppName, "
      .. "DomainName, LiveStreamType, Oneshot, RegionId, ResumeTime, StreamName", err.message)
    _, err = a:check_call("ForbidLiveStream", with(FORBID, { ResumTime = "x", Bogus = "1" }))
    assert.equal("unknown parameters 'Bogus', 'ResumTime' (did you mean 'ResumeTime'?): ForbidLiveStream takes "
      .. "AppName, DomainName, LiveStreamType, Oneshot, RegionId, ResumeTime, StreamName", err.message)
    _, err = z:check_call("ForbidRTCStream", { StreamId = "s1", Bogus = "1" })
    assert.equal("unknown parameter 'Bogus': ForbidRTCStream takes Sequence, StreamId", err.message)
    assert.equal("ResumeTime", api.closest({ "ResumeTime", "Oneshot" }, "resumetime"))
    assert.is_nil(api.closest({ "ResumeTime" }, "Zzz"))
    assert.equal(1, api._distance("ab", "ba"))
    assert.equal(3, api._distance("", "abc"))
  end)

  it("names every required one missing", function()
    local _, err = a:check_call("ForbidLiveStream", { DomainName = "push.example.com" })
    assert.equal("parameters 'AppName', 'LiveStreamType', 'StreamName' are required", err.message)
    _, err = z:check_call("CloseRoom", {})
    assert.equal("parameter 'RoomId' is required", err.message)
    -- (ZEGO's Sequence is streamctl's to fill, where it is the call's decision)
    assert.truthy(z:check_call("ForbidRTCStream", { StreamId = "s1" }))
  end)

  it("holds each value to its type", function()
    local function why(client, action, params)
      local _, err = client:check_call(action, params)
      return err and err.message
    end
    local PUB = { DomainName = "push.example.com", StartTime = "2026-01-01T00:00:00Z",
                  EndTime = "2026-01-01T01:00:00Z" }
    assert.is_nil(why(a, "DescribeLiveStreamsPublishList", with(PUB, { PageSize = "30" })))
    assert.equal("parameter 'PageSize' must be an integer (decimal digits, a '-' before them for a negative one)",
      why(a, "DescribeLiveStreamsPublishList", with(PUB, { PageSize = "ten" })))
    assert.equal("parameter 'PageSize' must be a 32-bit integer (at most 2147483647)",
      why(a, "DescribeLiveStreamsPublishList", with(PUB, { PageSize = "2147483648" })))
    assert.is_nil(why(a, "DescribeLiveStreamsPublishList", with(PUB, { PageSize = 2147483647 })))
    assert.equal("parameter 'RoomCloseCallback' must be true or false",
      why(z, "CloseRoom", { RoomId = "r1", RoomCloseCallback = "yes" }))
    assert.is_nil(why(z, "CloseRoom", { RoomId = "r1", RoomCloseCallback = false }))
    assert.equal("parameter 'Sequence' must be a 64-bit integer (at most 9223372036854775807)",
      why(z, "RTMPDispatchV2", { StreamId = "s1", Type = "pull", Sequence = "9223372036854775808" }))
    -- (ZEGO's pages' own limits: values, range, bytes, a list's count)
    assert.equal("parameter 'DisableAudio' must be one of 0, 1",
      why(z, "SetForbidStreamRule", { RoomId = "r1", StreamId = "s1", DisableAudio = 2 }))
    assert.equal("parameter 'EffectiveTime' must be at most 86400",
      why(z, "SetForbidStreamRule", { RoomId = "r1", StreamId = "s1", EffectiveTime = 86401 }))
    assert.equal("parameter 'EffectiveTime' must be at least 1",
      why(z, "SetForbidStreamRule", { RoomId = "r1", StreamId = "s1", EffectiveTime = 0 }))
    assert.equal("parameter 'StreamId' must be at most 256 bytes (got 257)",
      why(z, "SetForbidStreamRule", { RoomId = "r1", StreamId = ("s"):rep(257) }))
    assert.equal("parameter 'UserId' must hold at most 5 items (got 6)",
      why(z, "KickoutUser", { RoomId = "r1", UserId = { "1", "2", "3", "4", "5", "6" } }))
    assert.is_nil(why(z, "KickoutUser", { RoomId = "r1", UserId = { "1", "2", "3", "4", "5" }, CustomReason = "x" }))
    assert.equal("parameter 'PositionNormalized' must be JSON text",
      why(a, "UpdateLiveAISubtitle", { SubtitleId = "x", PositionNormalized = "{x" }))
  end)

  it("writes a list Name.N (and Name.N.Field), refusing an index from 0, a gap and an unknown field", function()
    local out = assert(a:check_call("TagLiveResources", { ResourceType = "DOMAIN", ResourceId = { "d1", "d2" },
                                                          Tag = { { Key = "k", Value = "v" } } }))
    assert.same({ ResourceType = "DOMAIN", ["ResourceId.1"] = "d1", ["ResourceId.2"] = "d2", ["Tag.1.Key"] = "k",
                  ["Tag.1.Value"] = "v" }, out)
    local function why(params)
      local _, err = a:check_call("TagLiveResources", params)
      return err and err.message
    end
    assert.equal("parameter 'ResourceId.0' writes an item of list 'ResourceId' at index '0': an index is a whole "
      .. "number from 1", why { ResourceType = "DOMAIN", ["ResourceId.0"] = "d1", ["Tag.1.Key"] = "k" })
    assert.equal("parameter 'ResourceId.01' writes an item of list 'ResourceId' at index '01': an index is a whole "
      .. "number from 1", why { ResourceType = "DOMAIN", ["ResourceId.01"] = "d1", ["Tag.1.Key"] = "k" })
    assert.equal("parameter 'Tag.1.Valeu' names no field of list 'Tag' (its fields: Key, Value); did you mean "
      .. "'Tag.1.Value'?", why { ResourceType = "DOMAIN", ["ResourceId.1"] = "d1", ["Tag.1.Key"] = "k",
                                 ["Tag.1.Valeu"] = "v" })
    assert.equal("parameter 'Tag.1.Kee' names no field of list 'Tag' (its fields: Key, Value)",
      why { ResourceType = "DOMAIN", ["ResourceId.1"] = "d1", ["Tag.1.Kee"] = "k" })
    assert.equal("parameter 'Tag.1' must name a field of list 'Tag' (Tag.1.FIELD)",
      why { ResourceType = "DOMAIN", ["ResourceId.1"] = "d1", ["Tag.1"] = "k" })
    assert.equal("parameter 'ResourceId.1.X' writes into an item of list 'ResourceId', which has no fields",
      why { ResourceType = "DOMAIN", ["ResourceId.1.X"] = "d1", ["Tag.1.Key"] = "k" })
    assert.equal("parameter 'Tag' is required", why { ResourceType = "DOMAIN", ["ResourceId.1"] = "d1" })
    assert.equal("parameter 'ResourceId.3' leaves out item 2 of list 'ResourceId': its items are numbered from 1 "
      .. "without a gap", why { ResourceType = "DOMAIN", ["ResourceId.1"] = "d1", ["ResourceId.3"] = "d3",
                                ["Tag.1.Key"] = "k" })
    -- (a list inside a list's item: a production studio's episode components)
    assert.truthy(a:check_call("AddCasterProgram", { CasterId = "c1", ["Episode.1.ComponentId.1"] = "x" }))
    local _, err = a:check_call("AddCasterProgram", { CasterId = "c1", ["Episode.1.EpisodeName.1"] = "x" })
    assert.equal("parameter 'Episode.1.EpisodeName.1' writes into field 'EpisodeName' of list 'Episode', which is "
      .. "not a list", err.message)
  end)

  it("sends ZEGO's lists under the published name, a bare StreamId as StreamId[] where the page writes that",
    function()
    local req = assert(z:prepare("KickoutUser", { RoomId = "r1", UserId = { "u1", "u2" } }))
    assert.truthy(req.url:find("&RoomId=r1&UserId=u1&UserId=u2$"), req.url)
    req = assert(z:prepare("ForbidRTCStreams", { StreamId = { "a", "b" } }))
    assert.truthy(req.url:find("&StreamId%%5B%%5D=a&StreamId%%5B%%5D=b$"), req.url)
    local _, err = z:check_call("ForbidRTCStreams", { StreamId = { "a" }, ["StreamId[]"] = { "b" } })
    assert.equal("parameter 'StreamId' and parameter 'StreamId[]' are both sent as 'StreamId[]': give the values "
      .. "under one name", err.message)
  end)

  it("suggests the closest action for one the provider does not publish", function()
    local _, err = a:check_call("DescribeLiveStreamsPublishLst", {})
    assert.equal("unknown action 'DescribeLiveStreamsPublishLst' (did you mean 'DescribeLiveStreamsPublishList'?)",
      err.message)
    _, err = a:check_call("NoSuchThingAtAll", {})
    assert.equal("unknown action 'NoSuchThingAtAll'", err.message)
  end)

  it("paces a published method under its page's cap, else the provider's lowest", function()
    assert.equal(1, select(3, z:rate_for("CloseRoom")))
    assert.equal(50, select(3, z:rate_for("KickoutUser")))
    assert.equal(1, select(3, z:rate_for("DescribeSimpleStreamList")))
    assert.equal(1, select(3, a:rate_for("DescribeLiveStreamsPublishList")))
    assert.equal(1, select(3, a:rate_for("DescribeLiveDomainDetail")))
    assert.equal(100, select(3, a:rate_for("DescribeLiveDomainConfigs")))
    local t = assert(zego.new { app_id = 1234567890, server_secret = "0123456789abcdef0123456789abcdef",
                                is_test = true, endpoint = "http://127.0.0.1:9" })
    assert.equal(10, select(3, t:rate_for("SendBroadcastMessage")))
    assert.equal(100, select(3, z:rate_for("SendBroadcastMessage")))
  end)

  it("takes a read by its verb, sends a change once", function()
    assert.equal("read", aliyun.effect("DescribeLiveStreamsPublishList"))
    assert.equal("change", aliyun.effect("AddLiveDomain"))
    assert.equal("change", zego.effect("SendBroadcastMessage"))
    assert.is_false(a._rules.operations.AddLiveDomain.idempotent)
    assert.is_true(a._rules.operations.DescribeLiveStreamsPublishList.idempotent)
    -- (a ZEGO method with a Sequence and a StreamId takes streamctl's Sequence)
    assert.is_true(z._rules.operations.CreatCDNTransferRule.sequence)
    assert.is_nil(z._rules.operations.CloseRoom.sequence)
  end)
end)

describe("tools/provider-api.lua", function()
  local dir = ROOT .. "/spec/vectors/provider-api"
  -- (its status said by the shell: LuaJIT's popen close does not give it)
  local function run(cmd)
    local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"exit $?\""))
    local out = p:read("*a")
    p:close()
    local text, code = out:match("^(.*)exit (%d+)\n$")
    return tonumber(code), text
  end

  it("writes each provider's snapshot as data, byte for byte", function()
    for _, name in ipairs { "aliyun", "zego" } do
      local code, out = run("cd " .. ROOT .. " && lua5.4 tools/provider-api.lua " .. name .. " " .. dir .. "/" .. name
        .. " 0123abcd 2026-01-02")
      assert.equal(0, code, out)
      local f = assert(io.open(dir .. "/" .. name .. ".lua", "rb"))
      assert.equal(f:read("a"), out)
      f:close()
    end
  end)

  it("refuses a snapshot whose method is not in the index, naming it", function()
    local code, out = run("cd " .. ROOT .. " && lua5.4 tools/provider-api.lua aliyun " .. dir .. "/aliyun-broken"
      .. " 0123abcd 2026-01-02")
    assert.equal(1, code)
    assert.truthy(out:find("Lonely is not in en-US/live/version.json", 1, true), out)
  end)

  it("names its source in the data it wrote", function()
    for _, name in ipairs { "aliyun", "zego" } do
      local source = dofile(ROOT .. "/src/streamctl/" .. name .. "/api.lua").source
      assert.truthy(source.commit:find("^%x+$") and #source.commit == 40, name)
      assert.truthy(source.date:find("^%d%d%d%d%-%d%d%-%d%d$"), name)
    end
  end)
end)

describe("the named methods of the stream-control family", function()
  local a, z = ali_client(), zego_client()
  local function why(client, name, fields)
    local reqs, err = client:dry_run(name, fields)
    if reqs then return nil end
    return err.message
  end

  it("hold each page's rules: a time range's span, region codes, a release in the future", function()
    local P = { domain_name = "push.example.com", start_time = "2025-12-01T00:00:00Z",
                end_time = "2025-12-31T00:00:00Z" }
    assert.is_nil(why(a, "describe_live_streams_publish_list", P))
    P.end_time = "2026-01-01T00:00:01Z"
    assert.equal("fields 'start_time'..'end_time' must span at most 30 days",
      why(a, "describe_live_streams_publish_list", P))
    assert.equal("fields 'start_time'..'end_time' must span at most 7 days",
      why(a, "describe_live_streams_control_history", P))
    P.end_time = P.start_time
    assert.equal("field 'end_time' must be after start_time", why(a, "describe_live_streams_publish_list", P))
    local B = { domain_name = "push.example.com", app_name = "live", stream_name = "s1", block_type = "blacklist",
                location_list = "CN,AS" }
    assert.is_nil(why(a, "set_live_stream_block", B))
    B.location_list = "CN,,AS"
    assert.equal("field 'location_list' must be region codes (CN, AS...), joined by commas (not '')",
      why(a, "set_live_stream_block", B))
    B.location_list, B.release_time = "CN", "2025-12-31T00:00:00Z"
    assert.equal("field 'release_time' must be in the future", why(a, "set_live_stream_block", B))
    assert.equal("field 'function_names' must be feature names (aliauth, set_req_header...), joined by commas "
      .. "(not 'Aliauth')", why(a, "describe_live_domain_configs", { domain_name = "push.example.com",
                                                                     function_names = "Aliauth" }))
  end)

  it("ZEGO's rooms: up to 5 users a kick, 10 streams a look-up, a rule's time and flags", function()
    assert.is_nil(why(z, "kickout_user", { room_id = "r1", user_ids = { "u1", "u2" } }))
    assert.equal("field 'user_ids' must have at most 5 items (got 6)",
      why(z, "kickout_user", { room_id = "r1", user_ids = { "1", "2", "3", "4", "5", "6" } }))
    assert.equal("field 'effective_time' must be at most 86400",
      why(z, "set_forbid_stream_rule", { room_id = "r1", stream_id = "s1", effective_time = 86401 }))
    assert.equal("field 'room_id' must hold only letters, digits, '-' and '_' (found a space at byte 2)",
      why(z, "close_room", { room_id = "r 1" }))
    local req = assert(z:dry_run("kickout_user", { room_id = "r1", user_ids = { "u1", "u2" } }))[1]
    assert.truthy(req.url:find("&RoomId=r1&UserId=u1&UserId=u2$"), req.url)
  end)
end)

describe("a published method whose page puts its parameters in the body", function()
  it("Aliyun: its Body parameters form-encoded in the body, signed with the query's (V1 and V3)", function()
    local P = { AppId = "app", GroupId = "g1", OperatorUserId = "u1", Count = 3, BroadCastType = 0 }
    local v1 = assert(aliyun.new { access_key_id = "LTAIkey", access_key_secret = "secret", signature_version = "v1",
      endpoint = "http://127.0.0.1:9", clock = function() return NOW end, nonce = function() return "n1" end })
    local req = assert(v1:prepare("SendLike", P))
    assert.equal("AppId=app&BroadCastType=0&Count=3&GroupId=g1&OperatorUserId=u1", req.body)
    assert.equal("application/x-www-form-urlencoded", req.headers["content-type"])
    -- (the signature covers the body's parameters: the same string-to-sign as all of them in the query)
    local all = { AppId = "app", GroupId = "g1", OperatorUserId = "u1", Count = "3", BroadCastType = "0",
                  Action = "SendLike", Version = "2016-11-01", Format = "JSON", AccessKeyId = "LTAIkey",
                  SignatureMethod = "HMAC-SHA1", SignatureVersion = "1.0", SignatureNonce = "n1",
                  Timestamp = "2026-01-01T00:00:00Z" }
    local want = require("streamctl.core").aliyun_sign_v1("POST", all, "secret")
    assert.equal("http://127.0.0.1:9/?AccessKeyId=LTAIkey&Action=SendLike&Format=JSON&Signature="
      .. want:gsub("[+/=]", function(c) return ("%%%02X"):format(c:byte()) end)
      .. "&SignatureMethod=HMAC-SHA1&SignatureNonce=n1&SignatureVersion=1.0&Timestamp=2026-01-01T00%3A00%3A00Z"
      .. "&Version=2016-11-01", req.url)
    -- (a retry signs the same parameters again: the call's own table keeps its body's)
    assert.equal(req.body, assert(v1:prepare("SendLike", P)).body)
    local v3 = ali_client()
    req = assert(v3:prepare("SendLike", P))
    assert.equal("AppId=app&BroadCastType=0&Count=3&GroupId=g1&OperatorUserId=u1", req.body)
    assert.equal(require("streamctl.core").sha256_hex(req.body), req.headers["x-acs-content-sha256"])
    assert.equal("http://127.0.0.1:9/", req.url)
  end)

  it("ZEGO: its body parameters one JSON object, each by its published type", function()
    local req = assert(zego_client():prepare("StopMix", { TaskId = "t1", UserId = "u1", Sequence = 5 }))
    assert.equal("POST", req.method)
    assert.equal('{"Sequence":5,"TaskId":"t1","UserId":"u1"}', req.body)
    assert.equal("application/json", req.headers["content-type"])
    assert.truthy(req.url:find("?Action=StopMix&AppId=1234567890&", 1, true), req.url)
    assert.falsy(req.url:find("TaskId", 1, true), req.url)
  end)
end)
