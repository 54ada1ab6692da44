-- A busted output handler (busted -o spec/helpers/file_logs.lua) for a run
-- of many spec files in one process, as tools/run-specs.sh runs the unit
-- tier: each file gets a log of its own in STREAMCTL_SPEC_LOG_DIR, NAME.log
-- for spec/LAYER/NAME.lua, that ends as busted's own run of that file alone
-- would ("N successes / N failures / N errors / N pending : T seconds"), so
-- that run-specs reads a file's row from it as from a run of its own. A file
-- the run never ended (its interpreter died) has a log without that line.
-- Each row: "ok (SECONDS s) NAME", "pending NAME: why", or "FAILED NAME" with where, the
-- message and the traceback.
local pretty = require "pl.pretty"
local gettime = require("system").gettime

return function()
  local busted = require "busted"
  local handler = require("busted.outputHandlers.base")()
  local dir = assert(os.getenv("STREAMCTL_SPEC_LOG_DIR"), "STREAMCTL_SPEC_LOG_DIR: the directory of the logs")
  local log, counts, started

  local function log_of(file_name)
    return dir .. "/" .. file_name:gsub("^.*/", ""):gsub("%.lua$", "") .. ".log"
  end

  local function write(...)
    if log then log:write(...) else io.stderr:write(...) end
  end

  local function failed(kind, t)
    local message = t.message
    if message == nil then message = "nil error" elseif type(message) ~= "string" then message = pretty.write(message) end
    local trace = t.trace or {}
    write("FAILED (", kind, ") ", t.name or "", "\n")
    if t.element and t.element.trace and t.element.trace.short_src then
      write("  at ", t.element.trace.short_src, ":", tostring(t.element.trace.currentline), "\n")
    end
    write("  ", (message:gsub("\n", "\n  ")), "\n")
    if trace.traceback then write("  ", (trace.traceback:gsub("^\n", ""):gsub("\n", "\n  ")), "\n") end
  end

  busted.subscribe({ "file", "start" }, function(file)
    log = assert(io.open(log_of(file.name), "a"))
    counts, started = { success = 0, failure = 0, error = 0, pending = 0 }, gettime()
    return nil, true
  end)

  busted.subscribe({ "test", "end" }, function(element, _, status)
    if not counts then return nil, true end
    counts[status] = (counts[status] or 0) + 1
    if status == "success" then
      write(string.format("ok (%.3f s) ", element.duration or 0), handler.getFullName(element), "\n")
    elseif status == "pending" then
      local t = handler.pendings[#handler.pendings]
      write("pending ", handler.getFullName(element), ": ", tostring(t and t.message or ""), "\n")
    elseif status == "failure" then
      failed("failure", handler.failures[#handler.failures])
    elseif status == "error" then
      failed("error", handler.errors[#handler.errors])
    end
    log:flush()
    return nil, true
  end, { predicate = handler.cancelOnPending })

  -- (an error outside a test: a describe's body, a setup or teardown, a file
  -- that does not load, which busted says before any file starts)
  busted.subscribe({ "error" }, function(element)
    if element.descriptor == "it" then return nil, true end
    if element.descriptor == "file" and not log then
      local f = assert(io.open(log_of(element.name), "a"))
      local keep = log
      log = f
      failed("error", handler.errors[#handler.errors])
      log = keep
      f:close()
      return nil, true
    end
    if counts then counts.error = counts.error + 1 end
    failed("error", handler.errors[#handler.errors])
    return nil, true
  end)

  busted.subscribe({ "file", "end" }, function()
    write(string.format("%d successes / %d failures / %d errors / %d pending : %.6f seconds\n", counts.success,
      counts.failure, counts.error, counts.pending, gettime() - started))
    log:close()
    log, counts = nil, nil
    return nil, true
  end)

  return handler
end
