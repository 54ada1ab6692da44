-- The operator's layer under faults (issue 34), one row per fault: the audit
-- log is a write-ahead log (a run killed at any point leaves its intent;
-- every record starts on a line of its own), and a state that cannot be
-- read is refused, never guessed (nothing is sent; the file is left as it
-- was). Against the emulator: the real command (in this process, or a real
-- child for the kills) and the library's reconcilers. Rows on identities and
-- credentials: spec/49; on calls and callback headers: spec/21, 34 and 35.
local cjson = require "cjson"
local socket = require "socket"
local core = require "streamctl.core"
local reconcile = require "streamctl.operator.reconcile"
local streamctl = require "streamctl"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local q = process.quote
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"
local HOME = process.temp_dir()

local run = require("spec.helpers.checks").cli(nil, HOME).run

local function lines_of(path)
  local out = {}
  for l in (process.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

local server
local function zg(...)
  local argv = { "zego", ... }
  for _, a in ipairs { "--endpoint", server.zego_url, "--app-id", "1234567890", "--server-secret", ZEGO_SECRET } do
    argv[#argv + 1] = a
  end
  return argv
end
local function count(action) return #(server:log { action = action, limit = 10000 }) end

local function list_file(n, fmt)
  local parts = {}
  for i = 1, n do parts[i] = fmt:format(i) end
  local path = HOME .. "/list-" .. n .. ".txt"
  process.write_file(path, table.concat(parts, "\n") .. "\n")
  return path, parts
end

describe("the operator's layer under faults", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("chmod -R u+rwx " .. q(HOME) .. "; rm -rf " .. q(HOME))
  end)
  before_each(function() server:reset() end)

  describe("the audit log", function()
    it("a 5,000-ID forbid killed (SIGKILL) mid-run leaves its intent, written before the first request", function()
      if process.preloaded() then
        pending("a child of its own: the same under valgrind or ASan; run once, in the plain runs")
        return
      end
      local list, names = list_file(5000, "room-%d")
      local log = HOME .. "/killed.jsonl"
      os.remove(log)
      -- (exec'd: the pid killed is the command's own; it ends by itself within 13 s if the kill missed)
      local cmd = "env LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " HOME=" .. q(HOME)
        .. " " .. q(process.interpreter()) .. " " .. q(ROOT .. "/bin/streamctl")
        .. " zego forbid-rtc-streams --from " .. q(list) .. " --yes --audit-log " .. q(log) .. " --endpoint "
        .. q(server.zego_url) .. " --app-id 1234567890 --server-secret " .. ZEGO_SECRET .. " --output json"
        .. " >/dev/null 2>" .. q(HOME .. "/killed.err")
      local child = process.spawn(cmd)
      -- (paced at 20 calls a second, its 250 calls take 12 s: killed once 16 have arrived, bounded)
      for _ = 1, 200 do
        if count("ForbidRTCStreams") >= 16 then break end
        socket.sleep(0.05)
      end
      os.execute("kill -KILL " .. child.pid)
      child.pipe:close()
      local sent = count("ForbidRTCStreams")
      assert.is_true(sent >= 16 and sent < 250, sent .. " sent; " .. tostring(process.read_file(HOME .. "/killed.err")))
      local lines = lines_of(log)
      assert.equal(1, #lines)
      local intent = cjson.decode(lines[1])
      assert.same({ "intent", 5000, (require("streamctl.operator.audit").digest(names)), list, { "ForbidRTCStreams" } },
        { intent.record, intent.count, intent.digest, intent.from, intent.actions })
    end)

    it("a line cut short by a full disk, then a good run: the good run's records parse, the cut said once",
      function()
      local log = HOME .. "/torn.jsonl"
      process.write_file(log, '{"time":"2026-11-24T00:00:00Z","record":"intent","run":"00ff"}\n{"time":"2026-11-24T')
      os.execute("chmod 600 " .. q(log))
      local status, _, err = run(zg("forbid-rtc-streams", "a", "b", "--audit-log", log))
      assert.equal(0, status, err)
      local lines = lines_of(log)
      assert.equal(4, #lines)
      assert.equal('{"time":"2026-11-24T', lines[2])
      local intent, outcome = cjson.decode(lines[3]), cjson.decode(lines[4])
      assert.same({ "intent", "outcome", intent.run, "ok", 1 }, { intent.record, outcome.record, outcome.run,
        outcome.outcome, outcome.calls })
      local n = 0
      for _ in err:gmatch("ended in a line cut short") do n = n + 1 end
      assert.equal(1, n, err)
      assert.equal("streamctl: warning: " .. log .. " ended in a line cut short (a full disk or a crash): a newline "
        .. "was added before this run's line\n", err:match("streamctl: warning: [^\n]*\n"))
    end)

    it("an intent that cannot be written sends nothing: a directory, a read-only place", function()
      for _, path in ipairs { HOME, "/proc/version" } do
        local status, out, err = run(zg("forbid-rtc-streams", "a", "--audit-log", path))
        assert.equal(2, status, path)
        assert.equal("", out)
        assert.truthy(err:find("nothing was sent", 1, true), err)
      end
      assert.equal(0, count("ForbidRTCStreams"))
    end)

    it("a batch interrupted after its third request says 3 calls, as sent, in the report and the outcome",
      function()
      local log = HOME .. "/interrupted.jsonl"
      os.remove(log)
      local asked, caught = 0, nil
      local signal = { catch = function() end, caught = function()
        -- (the run asks between rounds: SIGINT once three calls have arrived)
        asked = asked + 1
        if not caught and asked % 5 == 0 and count("ForbidRTCStreams") >= 3 then caught = 2 end
        return caught
      end }
      local list = list_file(1000, "room-%d")
      local status, out = run(zg("forbid-rtc-streams", "--from", list, "--yes", "--audit-log", log, "--output",
        "json", "--concurrency", "1"), signal)
      assert.equal(130, status)
      local sent = count("ForbidRTCStreams")
      assert.is_true(sent >= 3 and sent < 50, sent)
      local outcome = cjson.decode(lines_of(log)[2])
      assert.same({ "outcome", "interrupted", sent }, { outcome.record, outcome.outcome, outcome.calls })
      local not_sent = 0
      for line in out:gmatch("[^\n]+") do
        local r = cjson.decode(line)
        if r.code == "Interrupted" and not r.outcome_unknown then not_sent = not_sent + 1 end
      end
      assert.equal(1000 - 20 * sent, not_sent)
    end)
  end)

  describe("the ZEGO reconcile state", function()
    local function reconcile_cmd(state, list, ...)
      return run(zg("reconcile", "--from", list, "--state", state, "--audit-log", HOME .. "/r.jsonl", ...))
    end

    it("a state that cannot be read (a loop of links), a directory or a FIFO: nothing sent, nothing written",
      function()
      local list = list_file(2, "room-%d")
      os.execute("ln -sf loop " .. q(HOME .. "/loop") .. " && mkdir -p " .. q(HOME .. "/dir")
        .. " && rm -f " .. q(HOME .. "/fifo") .. " && mkfifo " .. q(HOME .. "/fifo"))
      for _, row in ipairs {
        { HOME .. "/loop", "cannot be read: Too many levels of symbolic links" },
        { HOME .. "/dir", "is not a file (a directory)" },
        { HOME .. "/fifo", "is not a file (a FIFO)" },
      } do
        local status, _, err = reconcile_cmd(row[1], list)
        assert.equal(1, status, row[1])
        assert.truthy(err:find("StateUnavailable", 1, true), err)
        assert.truthy(err:find(row[1] .. " " .. row[2], 1, true), err)
        assert.truthy(err:find("nothing was sent", 1, true), err)
      end
      assert.equal(0, count("ForbidRTCStreams"))
      assert.equal("", process.read_file(HOME .. "/r.jsonl"))
    end)

    it("a state that is not a reconciler's (not JSON, empty, wrong types, wrong version): InvalidState, the file kept",
      function()
      local list = list_file(2, "room-%d")
      local key = "streamctl:reconcile:zego:1234567890"
      for _, text in ipairs {
        "{not json", "", "[1,2]",
        cjson.encode { [key] = '{"v":2,"streams":{"rtc:room-1":"yesterday"},"pending":{}}' },
        cjson.encode { [key] = '{"v":2,"streams":{},"pending":{"rtc:room-1":"maybe"}}' },
        cjson.encode { [key] = '{"v":9,"streams":{}}' },
        cjson.encode { [key] = 42 },
      } do
        local state = HOME .. "/state.json"
        process.write_file(state, text)
        local status, _, err = reconcile_cmd(state, list)
        assert.equal(1, status, text)
        assert.truthy(err:find("InvalidState", 1, true), text .. ": " .. err)
        assert.truthy(err:find("nothing was sent", 1, true), err)
        assert.equal(text, process.read_file(state))
      end
      assert.equal(0, count("ForbidRTCStreams"))
    end)

    local function zego_client()
      return assert(streamctl.zego.new { endpoint = server.zego_url, app_id = 1234567890,
                                          server_secret = ZEGO_SECRET })
    end

    it("a pending record that cannot be saved: nothing sent", function()
      local held = nil
      local store = { get = function() return held end, set = function() return nil, "disk full" end }
      local report, err = reconcile.zego(zego_client(), { { stream_id = "p1" } }, { state = store })
      assert.is_nil(report)
      assert.same({ "StateUnavailable", false }, { err.code, err.sent })
      assert.equal("the state 'streamctl:reconcile:zego:1234567890' could not be saved before sending (nothing was "
        .. "sent): disk full", err.message)
      assert.equal(0, count("ForbidRTCStreams"))
    end)

    it("killed between the pending record and the sends, or before the confirmation: the next round finishes",
      function()
      local path = HOME .. "/killed-state.json"
      os.remove(path)
      local store = reconcile.file_store(path)
      local z = zego_client()
      -- killed after the pending record was saved, before its requests left
      local dying = setmetatable({ forbid_rtc_streams = function() error("killed") end }, { __index = z })
      assert.has_error(function()
        reconcile.zego(dying, { { stream_id = "k1" }, { stream_id = "k2" } }, { state = store })
      end)
      assert.equal(0, count("ForbidRTCStreams"))
      local held = cjson.decode(cjson.decode(process.read_file(path))["streamctl:reconcile:zego:1234567890"])
      assert.same({ ["rtc:k1"] = "forbid", ["rtc:k2"] = "forbid" }, held.pending)
      -- killed after the requests, before the confirmation: k1 and k2 forbidden, the state still says pending
      dying = setmetatable({ forbid_rtc_streams = function(_, f)
        assert(z:forbid_rtc_streams(f))
        error("killed")
      end }, { __index = z })
      assert.has_error(function()
        reconcile.zego(dying, { { stream_id = "k1" }, { stream_id = "k2" } }, { state = store })
      end)
      assert.equal(1, count("ForbidRTCStreams"))
      -- the next round, k2 no longer desired: k1 forbidden again (it may not have been), k2 an extra, resumed
      local report = assert(reconcile.zego(z, { { stream_id = "k1" } }, { state = store, remove_extra = true }))
      assert.same({ { "rtc:k1" }, { "rtc:k2" }, true }, { report.found.missing, report.found.extra, report.in_sync })
      held = cjson.decode(cjson.decode(process.read_file(path))["streamctl:reconcile:zego:1234567890"])
      assert.same({ { ["rtc:k1"] = 0 }, {} }, { held.streams, held.pending })
      local app = server:state().zego.streams["1234567890"]
      assert.same({ "forbidden", "normal" }, { app.k1.rtc, app.k2.rtc })
      -- and a round after it has nothing to do
      report = assert(reconcile.zego(z, { { stream_id = "k1" } }, { state = store, remove_extra = true }))
      assert.same({ 0, 0, 0 }, { #report.found.missing, #report.found.extra, report.calls })
    end)

    it("a confirmation that cannot be saved: said in the report, the pending record kept for the next round",
      function()
      local path = HOME .. "/confirm-state.json"
      os.remove(path)
      local file = reconcile.file_store(path)
      local sets = 0
      local store = { get = file.get, set = function(_, k, v)
        sets = sets + 1
        if sets == 2 then return nil, "disk full" end
        return file.set(file, k, v)
      end }
      local report = assert(reconcile.zego(zego_client(), { { stream_id = "c1" } }, { state = store }))
      assert.same({ 1, false, "StateUnavailable" }, { report.fixed, report.in_sync, report.state_error.code })
      assert.truthy(report.state_error.message:find("stays pending", 1, true), report.state_error.message)
      local held = cjson.decode(cjson.decode(process.read_file(path))["streamctl:reconcile:zego:1234567890"])
      assert.same({ ["rtc:c1"] = "forbid" }, held.pending)
    end)

    it("a state file replaced whole: a save that fails leaves the bytes it held", function()
      local path = HOME .. "/kept.json"
      local before = '{"streamctl:reconcile:zego:1234567890":"{\\"v\\":2,\\"streams\\":{},\\"pending\\":{}}"}\n'
      process.write_file(path, before)
      local store = reconcile.file_store(path)
      local replace = core.replace_file
      core.replace_file = function() return nil, "cannot replace " .. path .. ": No space left on device" end
      local ok, report, err = pcall(reconcile.zego, zego_client(), { { stream_id = "f1" } }, { state = store })
      core.replace_file = replace
      assert(ok, report)
      assert.is_nil(report)
      assert.equal("StateUnavailable", err.code)
      assert.equal(before, process.read_file(path))
      assert.equal(0, count("ForbidRTCStreams"))
    end)
  end)
end)
