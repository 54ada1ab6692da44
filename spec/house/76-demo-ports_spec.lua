-- sanitizers: none (the house: the Makefile's demo, not our C)
-- interpreters: lua5.4 (it runs `make demo`, which runs the Lua 5.4 build: the interpreter running it is not under test)
-- `make demo DEMO_PORTS="A Z AT ZT"` (README "Two commands"): the demo's
-- emulator on the ports named, in the order Aliyun HTTP, ZEGO HTTP, Aliyun
-- HTTPS, ZEGO HTTPS; a value that is not four distinct ports 1..65535 is
-- refused naming DEMO_PORTS, before the emulator starts. (demo-deps and
-- build-5.4 are taken as done, -o: the build under test is this one; the
-- emulator's directory is a temporary one, DEMO_DIR.)
local process = require "spec.helpers.process"
local emu = require "spec.helpers.emulator"

local q = process.quote
local ROOT = os.getenv("STREAMCTL_ROOT") or "."

-- `make demo DEMO_PORTS=ports`: exit status, output (both streams), and
-- whether the emulator's directory was made (the emulator started).
local function demo(ports)
  local dir = process.temp_dir()
  -- (as a user's make: not a sub-make of the make that runs the suite, whose MAKELEVEL would make it say
  -- "make[1]:" and whose MAKEFLAGS it would take)
  local p = assert(io.popen("cd " .. q(ROOT) .. " && env -u MAKELEVEL -u MAKEFLAGS -u MFLAGS make -s -o demo-deps "
    .. "-o build-5.4 demo DEMO_DIR=" .. q(dir .. "/emu")
    .. " DEMO_PORTS=" .. q(ports) .. " 2>&1; echo \"exit $?\""))
  local out = p:read("*a")
  p:close()
  local started = process.read_file(dir .. "/emu/endpoints.env") ~= nil
  os.execute("rm -rf " .. q(dir))
  local status = tonumber(out:match("exit (%d+)\n$"))
  return status, out:gsub("exit %d+\n$", ""), started
end

describe("make demo's DEMO_PORTS", function()
  it("runs the demo's emulator on the four ports named, in their order", function()
    -- (in descending order: never the order free ones would be taken in without DEMO_PORTS)
    local free = emu.free_ports(4)
    local ports = { free[4], free[3], free[2], free[1] }
    local status, out = demo(table.concat(ports, " "))
    assert.are.equal(0, status, out)
    assert.truthy(out:find(("  Aliyun  http://127.0.0.1:%d   https://127.0.0.1:%d\n"):format(ports[1], ports[3]), 1,
      true), out)
    assert.truthy(out:find(("  ZEGO    http://127.0.0.1:%d   https://127.0.0.1:%d\n"):format(ports[2], ports[4]), 1,
      true), out)
    assert.truthy(out:find("== Alibaba Cloud ApsaraVideo Live at https://127.0.0.1:" .. ports[3] .. "\n", 1, true), out)
  end)

  it("refuses anything but four distinct ports 1..65535, naming DEMO_PORTS, and starts nothing", function()
    for _, bad in ipairs { "28080 28081 28443", "28080 28081 28443 28444 28445", "28080 28081 28443 28443",
      "0 28081 28443 28444", "28080 28081 28443 65536", "28080 28081 28443 x'y", "028080 28081 28443 28444" } do
      local status, out, started = demo(bad)
      -- (make's own line after it names the Makefile's line: any)
      local said, made = out:match("^([^\n]*\n)(.*)$")
      assert.are.same({ 2, "make demo: DEMO_PORTS=\"" .. bad .. "\": not four distinct ports 1..65535 (Aliyun HTTP, "
        .. "ZEGO HTTP, Aliyun HTTPS, ZEGO HTTPS: DEMO_PORTS=\"28080 28081 28443 28444\")\n", false },
        { status, said, started }, bad)
      assert.matches("^make: %*%*%* %[Makefile:%d+: demo%] Error 2\n$", made)
    end
  end)
end)
