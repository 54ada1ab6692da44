-- tier: unit
-- Issue 71's cost: streamctl.core's OTLP span encoders (csrc/otlp.c, a
-- plain span; csrc/otlp_record.c, a record; csrc/otlp_queue.c, the
-- exporter's queue, its requests as strings or bytes) make
-- the bytes the Lua encoder makes (spec/trace/01 holds those to protoc's),
-- for spans of every shape drawn from fixed seeds; where it does not take a
-- span as it is (text not UTF-8, a value of another type, an id that is not
-- hex, a time out of range) it says nil, and the Lua encoder mends or refuses.
-- Its C runs in this process: all four modes (valgrind and ASan included).
local otlp = require "streamctl.trace.otlp"
local spanrecord = require "streamctl.base.spanrecord"
local core = require "streamctl.core"

-- A small generator of its own (a seed gives the same spans everywhere): Park-Miller.
local function rng(seed)
  local x = seed
  return function(n)
    x = (x * 16807) % 2147483647
    return x % n
  end
end

local HEX = "0123456789abcdefABCDEF"
local function hex(r, n)
  local t = {}
  for i = 1, n do local k = r(#HEX) + 1; t[i] = HEX:sub(k, k) end
  return table.concat(t)
end

local TEXTS = { "", "a", "Live.ForbidLiveStream", "x=1,y=2", "caf\195\169", "\226\130\172", "\240\159\152\128",
  string.rep("z", 300) }
-- (not UTF-8 by the encoder's rule: a bad byte, overlong, a surrogate, beyond U+10FFFF, cut short)
local BAD = { "bad\255", "\192\128", "\237\160\128", "\244\144\128\128", "cut\226\130", "\224\128\128" }
local function text(r)
  if r(30) == 0 then return BAD[r(#BAD) + 1] end
  return TEXTS[r(#TEXTS) + 1]
end

local function value(r)
  local k = r(9)
  if k == 0 then return text(r) end
  if k == 1 then return r(2) == 0 end
  if k == 2 then return r(100000) - 50000 end
  if k == 3 then return (r(100000) - 50000) / 7 end
  if k == 4 then return -2 ^ 63 end
  if k == 5 then return 2 ^ 63 end
  if k == 6 then return 0 / 0 end
  if k == 7 then return math.huge * (r(2) == 0 and 1 or -1) end
  return r(3) == 0 and -0.0 or 2 ^ 53 + r(3)
end

local function attributes(r)
  if r(5) == 0 then return nil end
  local a = {}
  for _ = 1, r(12) do a[text(r) .. r(50)] = value(r) end
  return a
end

local function span(r)
  local s = { trace_id = hex(r, 32), span_id = hex(r, 16), name = text(r),
              kind = ({ "internal", "client", "server", "producer", "consumer" })[r(5) + 1],
              start_time = r(4) == 0 and 0 or 1795800000 + r(100000) / (r(999) + 1), end_time = 1795900000.5,
              attributes = attributes(r) }
  if r(2) == 0 then s.parent_span_id = hex(r, 16) end
  if r(3) == 0 then s.trace_state = text(r) end
  local c = r(4)
  if c > 0 then s.status = { code = ({ "unset", "ok", "error" })[c], message = r(2) == 0 and text(r) or nil } end
  if r(3) == 0 then
    s.events = {}
    for j = 1, r(3) do s.events[j] = { name = r(2) == 0 and text(r) or nil, time = 1795800000 + j / 3, attributes = attributes(r) } end
  end
  -- now and then, something the C encoder leaves to the Lua one
  local odd = r(40)
  if odd == 0 then s.trace_id = "zz" .. s.trace_id:sub(3) end
  if odd == 1 then s.start_time = -1 end
  if odd == 2 then s.kind = "other" end
  if odd == 3 and s.attributes then s.attributes.x = {} end
  if odd == 4 then s.status = { code = "error", message = 42 } end
  if odd == 5 then s.kind = "client\0x" end
  if odd == 6 then s.status = { code = "ok\0" } end
  return s
end

describe("streamctl.core.otlp_span", function()
  it("makes the Lua encoder's bytes for 3,000 spans of every shape, or leaves them to it", function()
    local same, left, refused = 0, 0, 0
    for seed = 1, 3000 do
      local s = span(rng(seed))
      local c = core.otlp_span(s)
      local ok, lua = pcall(otlp._lua_span_pb, s)
      if c then
        assert.is_true(ok, "seed " .. seed .. ": the C encoder took a span the Lua one refuses: " .. tostring(lua))
        assert.equal(lua, c, "seed " .. seed)
        same = same + 1
      elseif ok then
        left = left + 1 -- (mended by the Lua encoder: text not UTF-8)
        assert.equal(lua, otlp.span_pb(s))
      else
        refused = refused + 1
        assert.has_error(function() otlp.span_pb(s) end, lua)
      end
    end
    -- (every kind of outcome drawn: a generator that drew none would prove nothing)
    assert.is_true(same > 1000 and left > 100 and refused > 50, same .. " same, " .. left .. " left, " .. refused .. " refused")
  end)

  it("a span bigger than its first buffer, and one with more attributes than it takes", function()
    local big = { trace_id = string.rep("a", 32), span_id = string.rep("b", 16), name = "big", kind = "client",
                  start_time = 1795800000.25, end_time = 1795800001, attributes = {} }
    for i = 1, 60 do big.attributes["k" .. i] = string.rep(string.char(96 + i % 26), 100 * i) end
    local c = assert(core.otlp_span(big))
    assert.is_true(#c > 180000)
    assert.equal(otlp._lua_span_pb(big), c)
    for i = 61, 70 do big.attributes["k" .. i] = i end -- (70: more than the C encoder takes)
    assert.is_nil(core.otlp_span(big))
    assert.equal(otlp._lua_span_pb(big), otlp.span_pb(big))
  end)

  it("takes nothing but a table", function()
    for _, v in ipairs { 1, "span", true } do assert.is_nil(core.otlp_span(v)) end
    assert.is_nil(core.otlp_span())
  end)
end)

-- A record (streamctl.base.spanrecord) of a template drawn from fixed
-- seeds: names before and after its constants, values of every type, now
-- and then something the C encoder leaves to the Lua one (text not UTF-8,
-- a bad id, a time out of range, more attributes).
local GOOD = { "", "a", "Live.ForbidLiveStream", "caf\195\169", "\240\159\152\128" }
local BEFORE, AFTER = { "a.one", "a.two", "error.type", "http.x" }, { "t.one", "t.two", "zz" }
local function record(r)
  local names, constants = {}, {}
  for _, n in ipairs(BEFORE) do if r(2) == 0 then names[#names + 1] = n end end
  for _, n in ipairs(AFTER) do if r(2) == 0 then names[#names + 1] = n end end
  for i = 1, r(4) do constants["m." .. i] = value(r) end
  local kind = r(2) == 0 and spanrecord.INTERNAL or spanrecord.CLIENT
  local ok, t = pcall(spanrecord.template, GOOD[r(#GOOD) + 1], kind, names, constants)
  if not ok then return nil, t end
  local rec = { t, hex(r, 32), hex(r, 16), r(2) == 0 and hex(r, 16) or nil, r(3) == 0 and text(r) or nil,
                1795800000 + r(100000) / (r(999) + 1), 1795900000.5, r(3), r(2) == 0 and text(r) or nil }
  if r(4) == 0 then rec[10] = { name = text(r), time = 1795800000.125, attributes = attributes(r) } end
  if r(8) == 0 then rec[11] = { ["q.more"] = value(r) } end
  for i = 1, #names do rec[11 + i] = r(3) > 0 and value(r) or nil end
  local odd = r(40)
  if odd == 0 then rec[2] = "zz" .. rec[2]:sub(3) end
  if odd == 1 then rec[7] = -1 end
  if odd == 2 then rec[8] = 7 end
  return rec
end

describe("streamctl.core.otlp_record and otlp_queue", function()
  it("makes the bytes of the record's plain span for 3,000 records, or leaves them to the Lua encoder", function()
    local same, left, refused, bad = 0, 0, 0, 0
    for seed = 1, 3000 do
      local rec, why = record(rng(seed))
      if not rec then
        bad = bad + 1 -- (constants the template refuses: a value that is no string, number or boolean's)
        assert.matches("constants must map", why)
      else
        local c = core.otlp_record(rec)
        local ok, lua = pcall(otlp._lua_span_pb, spanrecord.plain(rec))
        if c then
          assert.is_true(ok, "seed " .. seed .. ": the C encoder took a record the Lua one refuses: " .. tostring(lua))
          assert.equal(lua, c, "seed " .. seed)
          same = same + 1
        elseif ok then
          left = left + 1
          assert.equal(lua, otlp.record_pb(rec))
        else
          refused = refused + 1
          assert.has_error(function() otlp.record_pb(rec) end)
        end
      end
    end
    assert.is_true(same > 1000 and left > 100 and refused > 20 and bad > 5,
      same .. " same, " .. left .. " left, " .. refused .. " refused, " .. bad .. " bad templates")
  end)

  it("a template's names sorted, each once, none among its constants; its text UTF-8", function()
    local C = { ["rpc.a"] = 1, ["rpc.c"] = 2 }
    assert.has_error(function() spanrecord.template("x", 1, { "b", "a" }, C) end,
      "spanrecord.template: names must be sorted, each once")
    assert.has_error(function() spanrecord.template("x", 1, { "a", "a" }, C) end,
      "spanrecord.template: names must be sorted, each once")
    assert.has_error(function() spanrecord.template("x", 1, { "rpc.b" }, C) end,
      "spanrecord.template: 'rpc.b' sorts among the constants")
    assert.has_error(function() spanrecord.template("bad\255", 1, {}, C) end,
      "spanrecord.template: the name must be UTF-8")
    assert.has_error(function() spanrecord.template("x", 1, {}, { ["bad\255"] = 1 }) end,
      "spanrecord.template: the constants must map UTF-8 names (at most 64) to strings, numbers or booleans")
    assert.has_error(function() spanrecord.template("x", 1, { "bad\0" }, {}) end,
      "spanrecord.template: the names must be UTF-8 strings of at most 125 bytes, with no NUL")
    assert.has_error(function() spanrecord.template("x", 1, { string.rep("k", 126) }, {}) end,
      "spanrecord.template: the names must be UTF-8 strings of at most 125 bytes, with no NUL")
    local t = spanrecord.template("x", 3, { "a", "z" }, C)
    -- (each name's key field after a byte of its length: what the encoder writes before its value)
    assert.same({ 1, { "a", "z" }, "\3\10\1a\3\10\1z" }, { t[3], t[4], t[5] })
    t = spanrecord.template("x", 3, { string.rep("k", 125) }, {})
    assert.equal("\127\10\125" .. string.rep("k", 125), t[5])
    -- a template not made by spanrecord.template, whose key fields run past their end: not taken
    local made_up = { t[1], t[2], 0, { "a" }, "\9\10\1a" }
    assert.is_nil(core.otlp_record({ made_up, string.rep("a", 32), string.rep("b", 16), nil, nil, 1, 2, 1, nil, nil, nil,
                                     "value" }))
    made_up[5] = "\3\10\1a"
    assert.is_string(core.otlp_record({ made_up, string.rep("a", 32), string.rep("b", 16), nil, nil, 1, 2, 1, nil, nil,
                                        nil, "value" }))
  end)

  it("a queue's tracer methods: put's arguments queue record's bytes for 3,000 records; the rest to the fallback",
    function()
    local resource = { ["service.name"] = "spec-05" }
    local qa, qb = core.otlp_queue(otlp.request_parts(resource)), core.otlp_queue(otlp.request_parts(resource))
    local SELF, left_a, left_b = {}, {}, {}
    local function keep(list) return function(self, rec) assert.equal(SELF, self); list[#list + 1] = rec end end
    local as_record = qa:tracer(0, keep(left_a))
    local _, put = qb:tracer(0, keep(left_b))
    local slots = {}
    for seed = 1, 3000 do
      local rec = record(rng(seed))
      if rec then
        slots[#slots + 1] = 11 + #rec[1].names
        as_record(SELF, rec)
        put(SELF, table.unpack(rec, 1, slots[#slots]))
      end
    end
    assert.is_true(qa:count() > 1000 and #left_a > 100, qa:count() .. " queued, " .. #left_a .. " left")
    assert.same({ qa:count(), #left_a, 0, 0 }, { qb:count(), #left_b, qa:dropped(), (qb:dropped()) })
    assert.equal(qa:take(3000), qb:take(3000))
    -- (what the encoder left: the same record, the arguments made a table; NaN is NaN)
    for i, rec in ipairs(left_a) do
      for k = 1, 11 + #rec[1].names do
        local x, y = rec[k], left_b[i][k]
        assert.is_true(x == y or (x ~= x and y ~= y), "record " .. i .. ", slot " .. k)
      end
    end
    -- the most it queues, then dropped and counted; stopped, and closed: dropped too
    local q = core.otlp_queue(otlp.request_parts(resource))
    local seed, one = 0
    repeat seed = seed + 1; one = record(rng(seed)) until one and core.otlp_record(one)
    local r2, p2 = q:tracer(2, function() error("not reached") end)
    local n = 11 + #one[1].names
    r2(SELF, one); p2(SELF, table.unpack(one, 1, n)); r2(SELF, one); p2(SELF, table.unpack(one, 1, n))
    assert.same({ 2, 2, 0 }, { q:count(), q:dropped() })
    q:take(1)
    p2(SELF, table.unpack(one, 1, n))
    assert.same({ 2, 2, 0 }, { q:count(), q:dropped() })
    q:take(1)
    q:stop()
    r2(SELF, one); p2(SELF, table.unpack(one, 1, n))
    assert.same({ 1, 4, 0 }, { q:count(), q:dropped() })
    debug.getmetatable(q).__gc(q)
    r2(SELF, one)
    assert.same({ 0, 5, 0 }, { q:count(), q:dropped() })
    -- a trace's root (the third and fourth methods): queued up to twice the most, its drops counted apart
    local qr = core.otlp_queue(otlp.request_parts(resource))
    local cr, cp, rr, rp = qr:tracer(2, function() error("not reached") end)
    cr(SELF, one); cp(SELF, table.unpack(one, 1, n)); cr(SELF, one) -- (two queued, a child dropped)
    rr(SELF, one); rp(SELF, table.unpack(one, 1, n))                 -- (four queued: twice the most)
    rr(SELF, one); rp(SELF, table.unpack(one, 1, n)); cp(SELF, table.unpack(one, 1, n)) -- (dropped: two roots, a child)
    assert.same({ 4, 4, 2 }, { qr:count(), qr:dropped() })
    qr:take(1)
    cr(SELF, one); rr(SELF, one)                                     -- (three: a child dropped, the root queued)
    assert.same({ 4, 5, 2 }, { qr:count(), qr:dropped() })
    -- a fallback that raises: raised, nothing queued; a bad bound or fallback refused
    local q3 = core.otlp_queue(otlp.request_parts(resource))
    local r3, p3 = q3:tracer(0, function() error("fallback raised", 0) end)
    assert.has_error(function() r3(SELF, {}) end, "fallback raised")
    assert.has_error(function() p3(SELF, one[1], "not an id") end, "fallback raised")
    assert.has_error(function() p3(SELF) end, "fallback raised")
    assert.equal(0, q3:count())
    assert.has_error(function() q3:tracer(-1, print) end)
    assert.has_error(function() q3:tracer(1, "print") end)
    assert.has_error(function() q3:tracer(2 ^ 30 + 1, print) end) -- (twice it, a root's bound, out of range)
    q3:tracer(2 ^ 30, print)
  end)

  it("a queue's request holds the spans it took, as the Lua encoder would send them", function()
    local resource = { ["service.name"] = "spec-05" }
    local q = core.otlp_queue(otlp.request_parts(resource))
    local encoded, r, one = {}, rng(7), nil
    while #encoded < 40 do
      local rec = record(r)
      if rec and core.otlp_record(rec) then
        one = rec
        assert.is_true(q:record(rec))
        encoded[#encoded + 1] = core.otlp_record(rec)
      end
    end
    local plain, seed
    seed = 10
    repeat seed = seed + 1; plain = span(rng(seed)) until core.otlp_span(plain) or seed > 100
    assert.is_true(q:span(plain))
    encoded[#encoded + 1] = core.otlp_span(plain)
    q:push("\10\1x") -- (bytes made elsewhere: kept as they are)
    encoded[#encoded + 1] = "\10\1x"
    assert.is_false(q:record({})) -- (not taken: nothing queued)
    assert.equal(42, q:count())
    -- (a queue that holds `most` already takes nothing more, and says so with nil; one below takes one)
    assert.is_nil(q:record(one, 42))
    assert.is_nil(q:span(plain, 41))
    assert.is_nil(q:record({}, 42)) -- (full comes first: nothing looked at)
    assert.equal(42, q:count())
    assert.has_error(function() q:record(one, "many") end)
    assert.equal("streamctl.otlp_queue (42 spans)", tostring(q))
    local body, n = q:take(30)
    assert.same({ otlp.request_pb({ table.unpack(encoded, 1, 30) }, resource), 30 }, { body, n })
    body, n = q:take(100) -- (more than it holds: what it holds)
    assert.same({ otlp.request_pb({ table.unpack(encoded, 31, 42) }, resource), 12 }, { body, n })
    body, n = q:take(5)
    assert.same({ otlp.request_pb({}, resource), 0 }, { body, n })
    for _ = 1, 3 do q:push("abc") end
    assert.same({ 3, 0 }, { q:clear(), q:count() })
    -- a span bigger than a varint's byte, and a queue grown many times over
    for i = 1, 2000 do q:push(string.rep("s", i % 300)) end
    local big = {}
    for i = 1, 2000 do big[i] = string.rep("s", i % 300) end
    assert.same({ otlp.request_pb(big, resource), 2000 }, { q:take(2000) })
    -- into bytes (core.bytes: the exporter's outside nginx): the string's bytes, the bytes reused
    local b = core.bytes()
    assert.same({ "streamctl.bytes (0 bytes)", 0, "" }, { tostring(b), #b, b:string() })
    for i = 1, 2000 do q:push(string.rep("s", i % 300)) end
    assert.same({ b, 2000 }, { q:take(2000, b) })
    assert.equal(otlp.request_pb(big, resource), b:string())
    assert.equal(#b:string(), #b)
    assert.equal("streamctl.bytes (" .. #b .. " bytes)", tostring(b))
    q:push("abc")
    assert.same({ b, 1 }, { q:take(5, b) }) -- (smaller: the bytes hold the new request alone)
    assert.equal(otlp.request_pb({ "abc" }, resource), b:string())
    assert.same({ b, 0 }, { q:take(5, b) })
    assert.equal(otlp.request_pb({}, resource), b:string())
    -- part of the queue into bytes: a copy, the rest left queued; then all of it, twice, into two bytes in
    -- turn: each take hands the queue's buffer over and takes the bytes' back, and no bytes' request is
    -- written over by the spans queued after it or by the other's take
    for i = 1, 10 do q:push("p" .. i) end
    assert.same({ b, 4 }, { q:take(4, b) })
    assert.equal(otlp.request_pb({ "p1", "p2", "p3", "p4" }, resource), b:string())
    assert.equal(6, q:count())
    local b2, held = core.bytes(), {}
    local want = { "p5", "p6", "p7", "p8", "p9", "p10" }
    for round = 1, 4 do
      local into = round % 2 == 1 and b2 or b
      assert.same({ into, #want }, { q:take(1000, into) })
      held[into] = otlp.request_pb(want, resource)
      assert.equal(held[into], into:string())
      assert.equal(#held[into], #into)
      assert.equal(0, q:count())
      want = {}
      for i = 1, 40 * round do want[i] = string.rep(string.char(96 + round), i * 7) end -- (the queue grows)
      for _, x in ipairs(want) do q:push(x) end
      if held[b] then assert.equal(held[b], b:string()) end
      if held[b2] then assert.equal(held[b2], b2:string()) end
    end
    assert.same({ b2, 160 }, { q:take(1000, b2) })
    assert.equal(otlp.request_pb(want, resource), b2:string())
    assert.equal(held[b], b:string())
    assert.has_error(function() q:take(1, "not bytes") end)
    assert.has_error(function() q:take(1, q) end)
    assert.is_false(getmetatable(b)) -- (its metatable is not given out)
    -- closed (collected, or to-be-closed in Lua 5.4): it says so, and holds nothing
    debug.getmetatable(q).__gc(q)
    assert.has_error(function() q:push("x") end, "the span queue is closed")
    assert.has_error(function() q:take(1) end, "the span queue is closed")
    assert.has_error(function() q:record({}) end, "the span queue is closed")
    assert.same({ 0, 0 }, { q:count(), q:clear() })
  end)
end)
