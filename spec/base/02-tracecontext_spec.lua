-- tier: unit
-- W3C Trace Context (issue 71, streamctl.base.tracecontext): the
-- specification's own examples read as it reads them; every way a
-- traceparent breaks its rule ignored (a new trace, never an error); a
-- tracestate that breaks its rule dropped alone; new ids never zeros.
local tc = require "streamctl.base.tracecontext"

-- (the examples of https://www.w3.org/TR/trace-context/)
local EXAMPLE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

describe("traceparent", function()
  it("reads the specification's example, sampled or not, blanks around it allowed", function()
    assert.same({ trace_id = "0af7651916cd43dd8448eb211c80319c", parent_id = "b7ad6b7169203331", flags = "01",
                  sampled = true }, tc.parse_parent(EXAMPLE))
    assert.is_false(tc.parse_parent("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-00").sampled)
    assert.truthy(tc.parse_parent(" \t" .. EXAMPLE .. " "))
    -- a later version: its four fields, and "-" and more after them
    assert.equal("b7ad6b7169203331", tc.parse_parent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what-"
      .. "the-future-holds").parent_id)
  end)

  it("ignores one that breaks its rule, each way", function()
    for _, bad in ipairs {
      "", "00", EXAMPLE .. "-", "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
      "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
      "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-01",
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1",
      "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01",
      "00_0af7651916cd43dd8448eb211c80319c_b7ad6b7169203331_01",
      "cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
    } do
      assert.is_nil(tc.parse_parent(bad), bad)
    end
    assert.is_nil(tc.parse_parent(nil))
    assert.is_nil(tc.parse_parent(42))
  end)

  it("from: the caller's trace when valid, else a new one and why", function()
    local ctx, why = tc.from { traceparent = EXAMPLE, tracestate = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" }
    assert.same({ trace_id = "0af7651916cd43dd8448eb211c80319c", parent_id = "b7ad6b7169203331", sampled = true,
                  tracestate = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE" }, ctx)
    assert.is_nil(why)
    ctx, why = tc.from("00-garbage")
    assert.truthy(ctx.trace_id:find("^%x+$") and #ctx.trace_id == 32)
    assert.same({ true, nil }, { ctx.sampled, ctx.parent_id })
    assert.equal("the traceparent breaks its rule: a new trace", why)
    assert.is_nil(select(2, tc.from(nil)))
  end)

  it("traceparent: a new span's id and the header that names it, version 00, its flags", function()
    local ctx, seen = tc.from(EXAMPLE), {}
    for i = 1, 300 do
      ctx.sampled = i % 2 == 0
      local id, header = tc.traceparent(ctx.trace_id, ctx.sampled)
      assert.truthy(id:find("^[0-9a-f]+$") and #id == 16 and id ~= string.rep("0", 16))
      assert.is_nil(seen[id])
      seen[id] = true
      assert.equal("00-0af7651916cd43dd8448eb211c80319c-" .. id .. (ctx.sampled and "-01" or "-00"), header)
      -- (what a receiver reads back: the same trace, this span as the parent, the flag)
      assert.same({ trace_id = ctx.trace_id, parent_id = id, flags = ctx.sampled and "01" or "00",
                    sampled = ctx.sampled }, tc.parse_parent(header))
    end
    -- a trace id that is not 32 lower-case hex digits is a misuse: it would reach a header
    for _, bad in ipairs { string.rep("a", 31), string.rep("a", 33), string.rep("A", 32), "0af7651916cd43dd8448eb211c80319\n",
                           string.rep("g", 32) } do
      assert.has_error(function() tc.traceparent(bad, true) end,
        "bad argument #1 to 'traceparent' (a trace id is 32 lower-case hex digits)")
    end
  end)

  it("makes ids of lowercase hex, never zeros, each new", function()
    local seen = {}
    for _ = 1, 200 do
      local t, s = tc.new_trace_id(), tc.new_span_id()
      assert.truthy(t:find("^[0-9a-f]+$") and #t == 32 and s:find("^[0-9a-f]+$") and #s == 16)
      assert.is_nil(seen[t])
      seen[t] = true
    end
  end)
end)

describe("tracestate", function()
  it("reads the specification's examples, blanks and empty members allowed", function()
    local members, text = tc.parse_state("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE")
    assert.same({ { "rojo", "00f067aa0ba902b7" }, { "congo", "t61rcWkgMzE" } }, members)
    assert.equal("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", text)
    assert.equal("a=1,fw529a3039@dt=xyz", select(2, tc.parse_state(" a=1 ,, \tfw529a3039@dt=xyz ")))
  end)

  it("drops one that breaks its rule", function()
    local many = {}
    for i = 1, 33 do many[i] = "k" .. i .. "=v" end
    for _, bad in ipairs { "", "=v", "Rojo=1", "rojo", "rojo=", "rojo=a,rojo=b", "rojo=a,b", "rojo=a=b",
                           "1rojo=a", "@dt=x", "t@=x", "rojo=\1", table.concat(many, ","),
                           string.rep("a", 257) .. "=v", "a=" .. string.rep("v", 257) } do
      assert.is_nil(tc.parse_state(bad), bad)
    end
    assert.equal(32, #tc.parse_state(table.concat(many, ",", 1, 32)))
  end)
end)
