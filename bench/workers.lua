-- What the benchmarks that run processes against `make bench`'s emulator
-- share (bench/redis.lua, bench/strangers.lua, bench/shared.lua): the
-- emulator's control endpoints (STREAMCTL_ALIYUN_ENDPOINT, which bench/run.sh
-- sets) and client processes, spec/helpers/redis_worker.lua each, started
-- with the interpreter running the bench, what each says on standard error
-- kept in a file of its own.
--
--   local workers = require "bench.workers"
--   workers.control("POST", "reset")            -- /_emulator/reset; a value is sent as JSON
--   local child = workers.start { "aliyun", endpoint, redis_url, prefix, count }
--   local report, said = workers.report(child, "worker 1")  -- its JSON line decoded, its stderr
--   local reports, said = workers.reports(children)           -- each one's, in order
--   workers.stop(child)                         -- one not waited for yet: killed and reaped
--   workers.close()
--
-- A worker that printed no report raises, naming it and quoting what it
-- said on standard error: a bench stops there rather than record a 0.
local curl = require "streamctl.curl"
local cjson = require "cjson"
local process = require "spec.helpers.process"

local M = {}

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local WORKER = ROOT .. "/spec/helpers/redis_worker.lua"

local control -- (one connection, made at the first request)

--- A control request to the emulator (`path` after /_emulator/, `value`
-- sent as JSON when given): its answer decoded; raises unless it is 200.
function M.control(method, path, value)
  local endpoint = assert(os.getenv("STREAMCTL_ALIYUN_ENDPOINT"),
    "STREAMCTL_ALIYUN_ENDPOINT: the emulator (bench/run.sh sets it)")
  control = control or curl.easy { max_body = 64 * 1024 * 1024 } -- (a request log can be large)
  local res = assert(control:request { method = method, url = endpoint .. "/_emulator/" .. path,
    headers = value and { ["content-type"] = "application/json" } or {}, body = value and cjson.encode(value) or "" })
  assert(res.status == 200, method .. " /_emulator/" .. path .. " answered " .. res.status .. ": " .. res.body)
  return cjson.decode(res.body)
end

--- Closes the control connection.
function M.close()
  if control then control:close() end
  control = nil
end

--- Starts one worker, redis_worker.lua `args` (its mode first); returns the child.
function M.start(args)
  local quoted = {}
  for i, a in ipairs(args) do quoted[i] = process.quote(tostring(a)) end
  local err_file = os.tmpname()
  local child = process.spawn(process.quote(process.interpreter()) .. " " .. process.quote(WORKER) .. " "
    .. table.concat(quoted, " ") .. " 2>" .. process.quote(err_file))
  child.err_file = err_file
  return child
end

--- Waits for a worker's end: its report (the JSON line it printed, decoded)
-- and what it said on standard error. `who` names it if it printed none.
function M.report(child, who)
  local line = child.pipe:read("*l")
  child.pipe:close()
  child.done = true
  local said = process.read_file(child.err_file) or ""
  os.remove(child.err_file)
  local ok, report = pcall(cjson.decode, line or "")
  if not (ok and type(report) == "table") then
    error(string.format("%s printed no report (%s); it said: %s", who, line and "a line that is not JSON" or "nothing",
      said), 0)
  end
  return report, said
end

--- Waits for every worker in `children`: their reports, in order, and what
-- each said. When one printed no report, raises once all have ended,
-- naming the first such ("worker I", with `label` after it when given).
function M.reports(children, label)
  local reports, said, failed = {}, {}, nil
  for i, c in ipairs(children) do
    local ok, report, text = pcall(M.report, c, "worker " .. i .. (label and " (" .. label .. ")" or ""))
    if ok then
      reports[i], said[i] = report, text
    else
      failed = failed or report
    end
  end
  if failed then error(failed, 0) end
  return reports, said
end

--- Stops a worker not waited for yet (a run that failed midway): killed and reaped.
function M.stop(child)
  if child.done then return end
  child.done = true
  process.stop(child)
  os.remove(child.err_file)
end

return M
