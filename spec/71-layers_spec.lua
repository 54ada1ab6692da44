-- The house's walls (tools/layers.lua, docs/architecture.md "Layers"):
-- every module's requires, those inside functions too, point down only, no
-- cycle, and the core names no optional part. The checker is shown catching
-- each kind on planted text; the tree is held to it, with what is still to
-- move written out below (issue 37): one more problem fails, and so does
-- one fixed but still listed.
local layers = dofile((os.getenv("STREAMCTL_ROOT") or ".") .. "/tools/layers.lua")

local ROOT = os.getenv("STREAMCTL_ROOT") or "."

-- What the tree still does that the walls forbid, as tools/layers.lua says
-- it. Each line goes when its move is made (issue 37).
local STILL_TO_MOVE = {
  "optional: streamctl.client (pipeline) -> streamctl.store.redis (stores)",
  "optional: streamctl.client (pipeline) -> streamctl.store.shdict (stores)",
  "optional: streamctl.credentials (credentials) -> streamctl.store.shdict (stores)",
  "optional: streamctl.options (pipeline) -> streamctl.store.redis (stores)",
  "optional: streamctl.options (pipeline) -> streamctl.store.shdict (stores)",
  "optional: streamctl.pacing (pipeline) -> streamctl.store.redis (stores)",
  "optional: streamctl.pacing (pipeline) -> streamctl.store.shdict (stores)",
  "up: streamctl.cli (command) -> streamctl.emulator.defaults (emulator)",
}

describe("tools/layers.lua", function()
  it("reads requires anywhere in a file, and none in a comment or a string that only looks like one", function()
    local text = table.concat({
      'local a = require "streamctl.core"',
      '-- local b = require "streamctl.cli"',
      '--[[ require("streamctl.emulator.server") ]]',
      'local s = "-- not a comment"; local t = require("streamctl.url")',
      'local function later()',
      '  return require("streamctl.store.redis").connect, pcall(require, "streamctl.redis")',
      'end',
      'local long = [==[ require "streamctl.metrics" ]==]',
    }, "\n")
    assert.same({ ["streamctl.core"] = 1, ["streamctl.url"] = 4, ["streamctl.store.redis"] = 6,
                  ["streamctl.redis"] = 6, ["streamctl.metrics"] = 8 }, layers.requires(text))
  end)

  it("finds an arrow that points up, the core naming an optional part, a cycle and a module with no layer",
    function()
      local graph = {
        ["streamctl.runner"] = { ["streamctl.ratelimit"] = 3, ["streamctl.cli"] = 40 },       -- up
        ["streamctl.client"] = { ["streamctl.store.redis"] = 12, ["streamctl.retry"] = 2 },   -- optional
        ["streamctl.ratelimit"] = { ["streamctl.sequence"] = 5 },                             -- a cycle ...
        ["streamctl.sequence"] = { ["streamctl.ratelimit"] = 7 },                             -- ... of two
        ["streamctl.cli"] = { ["streamctl.zego"] = 1 },
        ["streamctl.zego"] = { ["streamctl.client"] = 1 },
        ["streamctl.store.redis"] = { ["streamctl.ratelimit"] = 1 },
        ["streamctl.nowhere"] = {},
      }
      assert.same({
        "cycle: streamctl.ratelimit streamctl.sequence",
        "optional: streamctl.client (pipeline) -> streamctl.store.redis (stores), line 12",
        "unplaced: streamctl.nowhere",
        "up: streamctl.runner (engine) -> streamctl.cli (command), line 40",
      }, layers.check(graph))
      -- and a graph that keeps the walls has nothing to say
      graph["streamctl.runner"]["streamctl.cli"] = nil
      graph["streamctl.client"]["streamctl.store.redis"] = nil
      graph["streamctl.sequence"] = {}
      graph["streamctl.nowhere"] = nil
      assert.same({}, layers.check(graph))
    end)

  it("catches an upward require planted in a copy of the tree", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "/lua' && cp -r '" .. ROOT .. "/lua/streamctl' '" .. dir .. "/lua/'"))
    local f = assert(io.open(dir .. "/lua/streamctl/runner.lua", "a"))
    f:write('\nlocal function planted() return require("streamctl.reconcile") end\n')
    f:close()
    local problems = layers.check(layers.scan(dir))
    os.execute("rm -rf '" .. dir .. "'")
    local found
    for _, p in ipairs(problems) do
      if p:find("^up: streamctl.runner %(engine%) %-> streamctl.reconcile %(operator%), line %d+$") then found = p end
    end
    assert.truthy(found, table.concat(problems, "\n"))
  end)
end)

describe("the tree", function()
  it("keeps the walls, but for what is still to move (and nothing listed there is already fixed)", function()
    -- (without their line numbers: an edit above a require does not move a wall)
    local problems = {}
    for i, p in ipairs(layers.check(layers.scan(ROOT))) do problems[i] = p:gsub(", line %d+$", "") end
    assert.same(STILL_TO_MOVE, problems)
  end)
end)
