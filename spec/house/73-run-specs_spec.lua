-- The test loop's own tools, shown catching what they exist for:
--   * tools/run-specs.sh's unit tier refuses a spec that says it is a unit
--     spec and starts a server (it passes outside the tier: the guard is
--     what fails it);
--   * a failed file in a run side by side is named with its log, its port
--     block and the command that replays it alone, and that command
--     replays it on the same ports;
--   * spec/helpers/ports.lua: processes at once get blocks of their own, a
--     block asked for that a live process holds is not shared, and a dead
--     owner's block is taken over.
-- Everything runs in a directory of its own (STREAMCTL_SPEC_OUT for the
-- runner's logs, TMPDIR for the port claims), never the suite's own.
local process = require "spec.helpers.process"
local ports = require "spec.helpers.ports"

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local q = process.quote

describe("the test loop's tools", function()
  local tmp
  lazy_setup(function() tmp = process.temp_dir() end)
  lazy_teardown(function() if tmp then os.execute("rm -rf " .. q(tmp)) end end)

  -- tools/run-specs.sh `args` on `file` (a spec written into tmp): its exit status and output.
  local function runner(args, name, text)
    local file = tmp .. "/" .. name
    process.write_file(file, text)
    local out = process.capture("cd " .. q(ROOT) .. " && STREAMCTL_SPEC_OUT=" .. q(tmp .. "/out")
      .. " TMPDIR=" .. q(tmp) .. " tools/run-specs.sh " .. args .. " " .. q(file) .. " 2>&1; echo \"exit $?\"")
    return tonumber(out:match("exit (%d+)\n$")), out, file
  end

  describe("tools/run-specs.sh", function()
    local UNIT_BUT_SERVER = table.concat({
      "-- tier: unit",
      "local emu = require 'spec.helpers.emulator'",
      "describe('a unit spec', function() it('asks for ports', function() emu.free_ports(1) end) end)",
    }, "\n")

    it("refuses, in the unit tier, a spec that says it is a unit spec and starts a server", function()
      local status, out = runner("-u lua5.4 1", "unit_but_server_spec.lua", UNIT_BUT_SERVER)
      assert.equal(1, status, out)
      assert.truthy(out:find("FAILED lua5.4   unit_but_server_spec", 1, true), out)
      assert.truthy(out:find("this spec starts a server (it asks for ports): it is not a unit spec (drop its line "
        .. "'-- tier: unit')", 1, true), out)
      -- outside the tier the same file passes: the tier's guard is what failed it
      status, out = runner("lua5.4 1", "unit_but_server_spec.lua", UNIT_BUT_SERVER)
      assert.equal(0, status, out)
      assert.truthy(out:find("ok     lua5.4   unit_but_server_spec", 1, true), out)
    end)

    it("names a failed file, its log, its ports and the command that replays it alone on them", function()
      local status, out, file = runner("lua5.4 2", "fails_spec.lua", table.concat({
        "local ports = require 'spec.helpers.ports'",
        "describe('a spec', function() it('fails', function()",
        "  ports.free(2)",
        "  assert.equal('expected', 'got')",
        "end) end)",
      }, "\n"))
      assert.equal(1, status, out)
      local block = out:match("FAILED lua5.4   fails_spec %s+[%d.]+ s  0 passed, 1 failed %(exit 1; ports of block (%d+)%)")
      assert(block, out)
      assert.truthy(out:find(tmp .. "/out/specs-lua5.4/fails_spec.log", 1, true), out)
      local replay = out:match("\n  replay alone: ([^\n]+)")
      assert(replay, out)
      assert.equal("STREAMCTL_SPEC_PORT_BLOCK=" .. block .. " ", replay:sub(1, #block + 27))
      assert.equal(" " .. file, replay:sub(-#file - 1))
      -- the command as given (the block is free again: its owner has ended)
      local again = process.capture("cd " .. q(ROOT) .. " && TMPDIR=" .. q(tmp) .. " " .. replay .. " 2>&1")
      assert.truthy(again:find("spec ports: block " .. block .. ":", 1, true), again)
      assert.truthy(again:find("0 successes / 1 failure", 1, true), again)
    end)
  end)

  describe("spec/helpers/ports.lua", function()
    -- A process that takes a port, says its block and port, and holds them `hold` seconds.
    local function claimant(hold, block)
      return process.spawn("env TMPDIR=" .. q(tmp) .. " LUA_PATH=" .. q(ROOT .. "/?.lua;" .. package.path)
        .. (block and (" STREAMCTL_SPEC_PORT_BLOCK=" .. block) or "") .. " " .. q(process.interpreter())
        .. " -e " .. q("local p = require('spec.helpers.ports'); local port = p.free(1)[1]; "
        .. "io.write(p.describe(), ' ', port, '\\n'); io.stdout:flush(); os.execute('sleep " .. hold .. "')")
        .. " 2>/dev/null")
    end
    local function said(child)
      local line = child.pipe:read("*l")
      local block, first, port = (line or ""):match("^block (%d+): ports (%d+)%-%d+ (%d+)$")
      assert(block, "a claimant said: " .. tostring(line))
      return tonumber(block), tonumber(first), tonumber(port)
    end

    it("gives processes at once blocks of their own, below the ephemeral range, even when both ask for one",
      function()
      local a, b = claimant(2, 7), claimant(2, 7)
      local ba, fa, pa = said(a)
      local bb, fb, pb = said(b)
      process.stop(a)
      process.stop(b)
      assert.are_not.equal(ba, bb)
      assert.same({ 7, 8 }, { math.min(ba, bb), math.max(ba, bb) }) -- (the one that found 7 held took the next)
      for _, v in ipairs { { ba, fa, pa }, { bb, fb, pb } } do
        assert.equal(ports.FIRST + v[1] * ports.BLOCK, v[2])
        assert.is_true(v[3] >= v[2] and v[3] < v[2] + ports.BLOCK)
      end
      local low = tonumber(process.read_file("/proc/sys/net/ipv4/ip_local_port_range"):match("%d+"))
      assert.is_true(math.max(fa, fb) + ports.BLOCK <= low)
    end)

    it("takes over a block whose owner is gone, and leaves one a live process holds", function()
      local dead = process.capture("sh -c 'echo $$'"):match("%d+") -- (a process that has ended)
      os.execute("mkdir -p " .. q(tmp .. "/streamctl-spec-ports/11"))
      process.write_file(tmp .. "/streamctl-spec-ports/11/pid", dead)
      local c = claimant(0, 11)
      assert.equal(11, (said(c)))
      process.stop(c)
      -- a live owner (this process): the block is left to it
      os.execute("mkdir -p " .. q(tmp .. "/streamctl-spec-ports/12"))
      local me = process.capture("echo $PPID"):match("%d+")
      process.write_file(tmp .. "/streamctl-spec-ports/12/pid", me)
      c = claimant(0, 12)
      assert.equal(13, (said(c)))
      process.stop(c)
    end)
  end)
end)
