-- sanitizers: none (the house: files, docs and tools, not our C)
-- The house's walls (tools/layers.lua, docs/development/architecture.md "Layers"):
-- every module's requires, those inside functions too, point down only, no
-- cycle, and the core names no optional part. The checker is shown catching
-- each kind on planted text; the tree is held to it.
local layers = dofile((os.getenv("STREAMCTL_ROOT") or ".") .. "/tools/layers.lua")

local ROOT = os.getenv("STREAMCTL_ROOT") or "."

-- A fresh directory (with `sub` in it) and a function writing a file under it: dir, write(path, text).
local function planted(sub)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. (sub and "/" .. sub or "") .. "'"))
  return dir, function(path, text)
    local f = assert(io.open(dir .. "/" .. path, "w"))
    f:write(text)
    f:close()
  end
end

describe("tools/layers.lua", function()
  it("reads requires anywhere in a file, and none in a comment or a string that only looks like one", function()
    local text = table.concat({
      'local a = require "streamctl.core"',
      '-- local b = require "streamctl.cli"',
      '--[[ require("streamctl.emulator.server") ]]',
      'local s = "-- not a comment"; local t = require("streamctl.base.url")',
      'local function later()',
      '  return require("streamctl.store.redis").connect, pcall(require, "streamctl.redis")',
      'end',
      'local long = [==[ require "streamctl.operator.metrics" ]==]',
    }, "\n")
    assert.same({ ["streamctl.core"] = 1, ["streamctl.base.url"] = 4, ["streamctl.store.redis"] = 6,
                  ["streamctl.redis"] = 6, ["streamctl.operator.metrics"] = 8 }, layers.requires(text))
  end)

  it("finds an arrow that points up, the core naming an optional part, a cycle and a module with no layer",
    function()
      local graph = {
        ["streamctl.engine.runner"] = { ["streamctl.engine.ratelimit"] = 3, ["streamctl.cli"] = 40 },       -- up
        ["streamctl.pipeline.client"] = { ["streamctl.store.redis"] = 12, ["streamctl.engine.retry"] = 2 },   -- optional
        ["streamctl.engine.ratelimit"] = { ["streamctl.engine.sequence"] = 5 },                             -- a cycle ...
        ["streamctl.engine.sequence"] = { ["streamctl.engine.ratelimit"] = 7 },                             -- ... of two
        ["streamctl.cli"] = { ["streamctl.zego"] = 1 },
        ["streamctl.zego"] = { ["streamctl.pipeline.client"] = 1 },
        ["streamctl.store.redis"] = { ["streamctl.engine.ratelimit"] = 1 },
        ["streamctl.nowhere"] = {},
      }
      assert.same({
        "cycle: streamctl.engine.ratelimit streamctl.engine.sequence",
        "optional: streamctl.pipeline.client (pipeline) -> streamctl.store.redis (stores), line 12",
        "unplaced: streamctl.nowhere",
        "up: streamctl.engine.runner (engine) -> streamctl.cli (command), line 40",
      }, layers.check(graph))
      -- and a graph that keeps the walls has nothing to say
      graph["streamctl.engine.runner"]["streamctl.cli"] = nil
      graph["streamctl.pipeline.client"]["streamctl.store.redis"] = nil
      graph["streamctl.engine.sequence"] = {}
      graph["streamctl.nowhere"] = nil
      assert.same({}, layers.check(graph))
    end)

  it("catches an upward require planted in a copy of the tree", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "/src' && cp -r '" .. ROOT .. "/src/streamctl' '" .. dir .. "/src/'"))
    local f = assert(io.open(dir .. "/src/streamctl/engine/runner.lua", "a"))
    f:write('\nlocal function planted() return require("streamctl.operator.reconcile") end\n')
    f:close()
    local problems = layers.check(layers.scan(dir))
    os.execute("rm -rf '" .. dir .. "'")
    local found
    for _, p in ipairs(problems) do
      if p:find("^up: streamctl.engine.runner %(engine%) %-> streamctl.operator.reconcile %(operator%), line %d+$") then found = p end
    end
    assert.truthy(found, table.concat(problems, "\n"))
  end)

  it("holds the programs under bin/ to their part's layer, and finds one no part holds", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "/src' '" .. dir .. "/bin' && cp -r '" .. ROOT .. "/src/streamctl' '"
      .. dir .. "/src/' && cp -r '" .. ROOT .. "/emulator' '" .. dir .. "/' && cp '" .. ROOT .. "/bin/streamctl' '"
      .. dir .. "/bin/'"))
    -- the emulator's launcher naming the command (it is below it), and a program of no part
    local f = assert(io.open(dir .. "/emulator/bin/streamctl-emulator", "a"))
    f:write('\nlocal ports = require("streamctl.cli.emulator").PORTS\n')
    f:close()
    f = assert(io.open(dir .. "/bin/streamctl-helper", "w"))
    f:write('#!/usr/bin/env lua\nrequire("streamctl.cli").main(arg)\n')
    f:close()
    local problems = layers.check(layers.scan(dir))
    os.execute("rm -rf '" .. dir .. "'")
    for i, p in ipairs(problems) do problems[i] = p:gsub(", line %d+$", "") end
    assert.same({ "unplaced: bin/streamctl-helper",
                  "up: emulator/bin/streamctl-emulator (emulator) -> streamctl.cli.emulator (command)" }, problems)
  end)
end)

describe("make sizes (bench/sizes.sh)", function()
  -- A copy of what it reads, with a file, a function and a program over the
  -- limits planted: each is named, and it exits 1; the tree itself is within.
  it("names a library file over 500 lines, an emulator function over 80 and a long program, and fails", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p '" .. dir .. "/src' '" .. dir .. "/bench' && cp -r '" .. ROOT .. "/src/streamctl' '"
      .. dir .. "/src/' && cp -r '" .. ROOT .. "/csrc' '" .. ROOT .. "/bin' '" .. ROOT .. "/emulator' '" .. dir
      .. "/' && cp '" .. ROOT .. "/bench/sizes.sh' '" .. dir .. "/bench/'"))
    local function write(path, text)
      local f = assert(io.open(dir .. "/" .. path, "w"))
      f:write(text)
      f:close()
    end
    local function body(n) return string.rep("  local x = 1\n", n) end
    write("src/streamctl/base/planted.lua", "local M = {}\n" .. string.rep("M.x = 1\n", 500) .. "return M\n")
    write("emulator/src/streamctl/emulator/planted.lua", "local function long()\n" .. body(80) .. "end\nreturn long\n")
    write("bin/planted", "#!/usr/bin/env lua\n" .. string.rep("print(1)\n", 501))
    local p = assert(io.popen("cd '" .. dir .. "' && sh bench/sizes.sh 3 2>&1; echo \"exit $?\""))
    local out = p:read("*a")
    p:close()
    os.execute("rm -rf '" .. dir .. "'")
    assert.truthy(out:find("\n  file +502 src/streamctl/base/planted%.lua\n"), out)
    assert.truthy(out:find("\n  function +82 +emulator/src/streamctl/emulator/planted%.lua:1\n"), out)
    assert.truthy(out:find("\n  file +502 bin/planted\n"), out)
    assert.truthy(out:find("\nexit 1\n$"), out)
  end)

  it("finds the tree within the limits", function()
    local p = assert(io.popen("cd '" .. ROOT .. "' && sh bench/sizes.sh 1 2>&1; echo \"exit $?\""))
    local out = p:read("*a")
    p:close()
    assert.truthy(out:find("\nexit 0\n$"), out)
  end)
end)

describe("the pages' budgets (tools/pages.sh, in make lint)", function()
  -- A README and a page planted in a tree of their own: each budget passed by one fails, naming it; at the budgets,
  -- it passes; and the tree's own pages are within them.
  local function budgets(dir)
    local p = assert(io.popen("cd '" .. dir .. "' && sh '" .. ROOT .. "/tools/pages.sh' 2>&1; echo \"exit $?\""))
    local out = p:read("*a")
    p:close()
    return out:match("^== over the pages' budgets[^\n]*\n(.-)\n"), out:match("\nexit (%d+)\n$")
  end

  it("names a README over 250 lines or 1,500 words, and pages over 40,000 words, and fails; at the budgets, passes",
    function()
    local dir, write = planted("docs/development")
    local said = {}
    -- { README's lines, its words, the words of a page under docs/development/ }
    for _, case in ipairs { { 251, 251, 0 }, { 250, 1501, 0 }, { 250, 1500, 38501 }, { 250, 1500, 38500 } } do
      local lines, words, more = table.unpack(case)
      write("README.md", string.rep("w ", words - lines + 1) .. "\n" .. string.rep("w\n", lines - 1))
      write("docs/development/page.md", string.rep("w ", more))
      said[#said + 1] = { budgets(dir) }
    end
    os.execute("rm -rf '" .. dir .. "'")
    assert.same({ { "  README.md: 251 lines (at most 250)", "1" }, { "  README.md: 1501 words (at most 1,500)", "1" },
                  { "  README.md and docs/: 40001 words (at most 40,000)", "1" },
                  { "  no page: README.md 250 lines, 1500 words; with docs/ 40000 words", "0" } }, said)
  end)

  it("finds the tree's pages within them", function()
    local said, status = budgets(ROOT)
    assert.equal("0", status, said)
  end)
end)

describe("what LuaJIT runs parses under it (tools/jit-parse.sh, in make lint)", function()
  local function parse(dirs)
    local p = assert(io.popen("cd '" .. ROOT .. "' && sh tools/jit-parse.sh " .. dirs .. " 2>&1; echo \"exit $?\""))
    local out = p:read("*a")
    p:close()
    return out
  end

  it("names a file in Lua 5.4's own syntax (an integer division, a <const>) and fails; LuaJIT's passes", function()
    local dir, write = planted()
    write("good.lua", "local t = {}\nreturn #t / 4, t\n")
    assert.equal("exit 0\n", parse("'" .. dir .. "'"))
    write("division.lua", "return 7 // 2\n")
    write("const.lua", "local x <const> = 1\nreturn x\n")
    local out = parse("'" .. dir .. "'")
    os.execute("rm -rf '" .. dir .. "'")
    assert.truthy(out:find(dir .. "/division.lua:1:", 1, true), out)
    assert.truthy(out:find(dir .. "/const.lua:1:", 1, true), out)
    assert.truthy(out:find("\nexit 1\n$"), out)
  end)

  it("finds the library, the emulator, the specs and the examples parsing", function()
    assert.equal("exit 0\n", parse("src emulator/src spec examples"))
  end)
end)

describe("the tree", function()
  it("keeps the walls: no cycle, no arrow up, the core naming no optional part (but through streamctl.pipeline.stores)",
    function()
    -- (without their line numbers: an edit above a require does not move a wall)
    local problems = {}
    for i, p in ipairs(layers.check(layers.scan(ROOT))) do problems[i] = p:gsub(", line %d+$", "") end
    assert.same({}, problems)
  end)
end)

describe("the core without its optional parts", function()
  -- A process in which every optional module is missing (a searcher that
  -- refuses them, before Lua's own): `require "streamctl"` loads, and both
  -- providers' clients sign a request, with none of them loaded.
  it("loads and signs with no store, operator tool, edge module, command or emulator present", function()
    local script = [=[
      local optional = { "^streamctl%.store%.", "^streamctl%.callbacks$", "^streamctl%.authkey$",
        "^streamctl%.audit$", "^streamctl%.reconcile$", "^streamctl%.desired$", "^streamctl%.metrics$",
        "^streamctl%.cli$", "^streamctl%.cli%.", "^streamctl%.emulator%.", "^streamctl%.redis$" }
      local searchers = package.searchers or package.loaders
      table.insert(searchers, 1, function(name)
        for _, p in ipairs(optional) do
          if name:find(p) then error("optional module " .. name .. " was asked for", 0) end
        end
        return nil
      end)
      local streamctl = require "streamctl"
      local ali = assert(streamctl.aliyun.new { access_key_id = "AK", access_key_secret = "sk",
        transport = function() return { status = 200, headers = {}, body = '{"RequestId":"r"}' } end })
      local reqs = assert(ali:dry_run("resume_live_stream", { domain_name = "d", app_name = "a", stream_name = "s" }))
      local zego = assert(streamctl.zego.new { app_id = 1234567890, server_secret = string.rep("0", 32),
        transport = function() return { status = 200, headers = {}, body = '{"Code":0,"Data":{}}' } end })
      local zreqs = assert(zego:dry_run("forbid_rtc_stream", { stream_id = "s" }))
      assert(ali:resume_live_stream { domain_name = "d", app_name = "a", stream_name = "s" })
      for name in pairs(package.loaded) do
        for _, p in ipairs(optional) do assert(not name:find(p), name .. " was loaded") end
      end
      print(#reqs, #zreqs, reqs[1].headers.authorization:match("^ACS3%-HMAC%-SHA256 Credential=AK,") and "signed",
        zreqs[1].url:match("[?&]Signature=") and "signed")
    ]=]
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(script)
    f:close()
    local process = require "spec.helpers.process"
    local p = assert(io.popen(process.quote(process.interpreter()) .. " " .. path .. " 2>&1"))
    local out = p:read("a")
    p:close()
    os.remove(path)
    assert.equal("1\t1\tsigned\tsigned\n", out)
  end)
end)
