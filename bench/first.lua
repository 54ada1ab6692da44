-- A long --from file starts sending at once (docs/cli.md, "Long lists"):
-- the wall time from a fresh process's start (CLOCK_MONOTONIC read by the
-- parent before it starts the process) to the moment the command's audit
-- intent is on the disk (written and synced after the file was counted; the
-- first request leaves next), with a file of 1,000,000 lines. The run is
-- then stopped (its standard output fails, as `| head` would): the
-- endpoint is a closed port on 127.0.0.1.
--
--   lua5.4 bench/first.lua        three runs, their median recorded
--   lua5.4 bench/first.lua RUN    one run, its seconds printed (internal)
local LINES = 1000000

if arg[1] == "RUN" then
  local clock = require("streamctl.core").monotonic
  local audit = require "streamctl.operator.audit"
  local cli = require "streamctl.cli"
  local seconds
  local writer = audit.writer
  audit.writer = function(...) -- (the intent is the run's first record: when it is synced, sending begins)
    local write, why = writer(...)
    if not write then return write, why end
    return function(...)
      local ok, err = write(...)
      seconds = seconds or clock()
      return ok, err
    end, why
  end
  local stdout = {
    write = function() return nil, "stopped by the benchmark" end,
    flush = function() return true end,
  }
  local stderr = { write = function() return true end, flush = function() return true end }
  cli.main({ "zego", "forbid-rtc-streams", "--from", arg[2], "--yes", "--app-id", "1234567890",
    "--server-secret", "0123456789abcdef0123456789abcdef", "--endpoint", "http://127.0.0.1:9", "--no-progress",
    "--audit-log", arg[3] }, { stdout = stdout, stderr = stderr,
    signal = { catch = function() end, caught = function() return nil end } })
  io.write(string.format("%.6f\n", assert(seconds, "the command never reached its batch")))
  return
end

local lib = require "bench.lib"
local core = require "streamctl.core"
local dir = os.getenv("BENCH_DIR_FIRST") or "build/bench"
os.execute("mkdir -p '" .. dir .. "'")
local list, log = dir .. "/first-list.txt", dir .. "/first-audit.jsonl"
local f = assert(io.open(list, "wb"))
for i = 1, LINES do f:write(string.format("room-%07d\n", i)) end
f:close()
local interpreter = arg[-1] or "lua5.4"
local samples = {}
for run = 1, 3 do
  os.remove(log)
  local t0 = core.monotonic()
  local p = assert(io.popen(string.format("'%s' bench/first.lua RUN '%s' '%s'", interpreter, list, log)))
  local out = p:read("*a")
  assert(p:close(), out)
  samples[run] = (assert(tonumber(out), out) - t0) * 1000
end
os.remove(list)
os.remove(log)
lib.record { group = "batches of any size", name = "the command, a 1,000,000-line --from file: until it sends",
             unit = "ms", samples = samples, decimals = 0 }
