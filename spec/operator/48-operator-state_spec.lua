-- State is refused, never guessed (issue 34): a fault matrix, one row per
-- fault, over every state the operator's layer reads. Absent is a first run;
-- unreadable, not a file or corrupt is an error naming the path (or key) and
-- the reason, and nothing is sent (err.sent == false); a state file is
-- replaced whole, and a save that fails leaves the bytes it held; the ZEGO
-- record is saved pending before the provider is changed and confirmed
-- after, so a round killed between the two is finished by the next one.
-- Fake clients count what would be sent; the rows marked "the command" run
-- `streamctl zego reconcile` against the emulator (spec/47 holds more).
local cjson = require "cjson"
local cli = require "streamctl.cli"
local core = require "streamctl.core"
local desired = require "streamctl.operator.desired"
local reconcile = require "streamctl.operator.reconcile"
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"
local redis_helper = require "spec.helpers.redis"

local q = process.quote
local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local ZEGO_SECRET = "0123456789abcdef0123456789abcdef"
local KEY = "streamctl:reconcile:zego:1234567890"
local HOME = process.temp_dir()
local ROOTED = process.capture("id -u") == "0\n"

-- A batch's report of `results`, as a client's batch method makes it:
-- each entry handed to `on_result`, kept only without keep_results = false.
local function batch_report(f, calls, results)
  for _, e in ipairs(results) do if f.on_result then f.on_result(e) end end
  return { calls = calls, results = f.keep_results == false and {} or results }
end

-- A ZEGO client that changes nothing and counts what it is asked to send;
-- `fail` = { method = function(self, fields) ... end } replaces one method.
local function fake_zego(fail)
  local c = { app_id = 1234567890, sent = {} }
  function c.now() return 1700000000 end
  local function batch(method)
    return function(self, f)
      if fail and fail[method] then return fail[method](self, f) end
      for _, id in ipairs(f.stream_ids) do self.sent[#self.sent + 1] = method .. " " .. id end
      local results = {}
      for i, id in ipairs(f.stream_ids) do results[i] = { stream = id, ok = true, attempts = 1 } end
      return batch_report(f, 1, results)
    end
  end
  local function single(method)
    return function(self, f)
      self.sent[#self.sent + 1] = method .. " " .. f.stream_id
      return { RequestId = "r" }
    end
  end
  c.forbid_rtc_streams, c.resume_rtc_streams = batch "forbid_rtc_streams", batch "resume_rtc_streams"
  c.forbid_cdn_live_stream, c.resume_cdn_live_stream = single "forbid_cdn_live_stream", single "resume_cdn_live_stream"
  return c
end

-- An Aliyun client whose block list answers `page` (page number -> answer); counts forbids.
local function fake_aliyun(pages)
  local c = { sent = 0 }
  function c.describe_live_streams_block_list(_, f) return pages[f.page_number] end
  -- (the account's one domain: the block list's places, read before the forbids)
  function c.describe_live_user_domains()
    return { TotalCount = 1, Domains = { PageData = { { DomainName = "push.example.com" } } } }
  end
  function c.forbid_live_streams(self, f) self.sent = self.sent + #f.stream_names return { calls = 1, results = {} } end
  function c.resume_live_streams(self, f) self.sent = self.sent + #f.stream_names return { calls = 1, results = {} } end
  return c
end

local WANT = { { stream_id = "a" }, { stream_id = "b" } }

local function state_of(path)
  return cjson.decode(cjson.decode((assert(process.read_file(path))))[KEY])
end

-- reconcile.zego over `store`: asserts it is refused with `code`, nothing sent; returns the error.
local function refused(store, code, want)
  local z = fake_zego()
  local report, err = reconcile.zego(z, want or WANT, { state = store, remove_extra = true })
  assert.is_nil(report)
  assert.same({ code, false, {} }, { err.code, err.sent, z.sent })
  assert.truthy(err.message:find("nothing was sent", 1, true), err.message)
  return err
end

-- A file store at `path` holding `text` (as the file, or as the state under KEY when `inner`).
local function file_with(name, text, inner)
  local path = HOME .. "/" .. name
  process.write_file(path, inner and cjson.encode { [KEY] = text } or text)
  return path, reconcile.file_store(path)
end

local buffer = require("spec.helpers.checks").buffer

local server
-- `streamctl zego reconcile` in this process against the emulator; status, stdout, stderr.
local function command(state, ...)
  local list = HOME .. "/want.txt"
  process.write_file(list, "a\nb\n")
  local argv = { "zego", "reconcile", "--from", list, "--state", state, "--no-audit-log", "--endpoint",
                 server.zego_url, "--app-id", "1234567890", "--server-secret", ZEGO_SECRET, ... }
  local out, err = buffer(), buffer()
  local ok, status = pcall(cli.main, argv, { stdout = out, stderr = err,
    signal = { catch = function() end, caught = function() return nil end },
    getenv = function(name) if name == "HOME" then return HOME end end })
  assert(ok, "raised: " .. tostring(status))
  return status, out:text(), err:text()
end
local function forbids() return #(server:log { action = "ForbidRTCStreams", limit = 10000 }) end

describe("state is refused, never guessed", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("chmod -R u+rwx " .. q(HOME) .. "; rm -rf " .. q(HOME))
  end)
  before_each(function() server:reset() end)

  describe("a state file", function()
    it("absent: a first run, saved pending then confirmed", function()
      local path = HOME .. "/first.json"
      os.remove(path)
      local z = fake_zego()
      local report = assert(reconcile.zego(z, WANT, { state = reconcile.file_store(path) }))
      assert.same({ true, { "forbid_rtc_streams a", "forbid_rtc_streams b" } }, { report.in_sync, z.sent })
      assert.equal('{"' .. KEY .. '":"{\\"v\\":2,\\"streams\\":{\\"rtc:a\\":0,\\"rtc:b\\":0},\\"pending\\":{}}"}\n',
        process.read_file(path))
      assert.equal("600", (process.capture("stat -c %a " .. q(path)):gsub("%s+$", "")))
    end)

    it("the command: a state the running user cannot read (EACCES) sends nothing, exit 1, file kept", function()
      if process.preloaded() then
        pending("a child of its own: run in the plain runs")
        return
      end
      local dir = HOME .. "/eacces"
      os.execute("mkdir -p " .. q(dir) .. " && chmod 755 " .. q(HOME) .. " " .. q(dir))
      local state, list = dir .. "/state.json", dir .. "/want.txt"
      local held = cjson.encode { [KEY] = '{"v":2,"streams":{"rtc:old":0},"pending":{}}' }
      process.write_file(state, held)
      process.write_file(list, "a\nb\n")
      os.execute("chmod 644 " .. q(list) .. " && chmod 000 " .. q(state))
      local as = ""
      if ROOTED then
        if not process.run("command -v setpriv >/dev/null") then
          pending("root without setpriv: root reads a mode-000 file")
          return
        end
        as = "setpriv --reuid=65534 --regid=65534 --clear-groups "
        -- (the command runs as nobody: a checkout under a private directory, mktemp -d's, is not its to read)
        if not process.run(as .. "test -r " .. q(ROOT .. "/bin/streamctl")) then
          pending("uid 65534 cannot read " .. ROOT .. "/bin/streamctl (a directory above it is private): run the "
            .. "spec from a checkout others may read")
          return
        end
      end
      local cmd = as .. "env LUA_PATH=" .. q(package.path) .. " LUA_CPATH=" .. q(package.cpath) .. " HOME=" .. q(dir)
        .. " " .. q(process.interpreter()) .. " " .. q(ROOT .. "/bin/streamctl") .. " zego reconcile --from "
        .. q(list) .. " --state " .. q(state) .. " --remove-extra --no-audit-log --endpoint " .. q(server.zego_url)
        .. " --app-id 1234567890 --server-secret " .. ZEGO_SECRET .. " 2>&1; echo \"exit $?\""
      local out = process.capture(cmd)
      assert.equal("streamctl: zego: StateUnavailable: the state '" .. KEY .. "' cannot be read: " .. state
        .. " cannot be read: Permission denied; nothing was sent\nexit 1\n", out)
      assert.equal(0, forbids())
      os.execute("chmod 600 " .. q(state))
      assert.equal(held, process.read_file(state))
    end)

    it("unreadable (EIO: /proc/self/mem): StateUnavailable naming the path and the reason", function()
      local err = refused(reconcile.file_store("/proc/self/mem"), "StateUnavailable")
      assert.equal("the state '" .. KEY .. "' cannot be read: /proc/self/mem cannot be read: Input/output error; "
        .. "nothing was sent", err.message)
    end)

    it("a loop of symbolic links (ELOOP): StateUnavailable", function()
      local path = HOME .. "/loop"
      os.execute("ln -sfn loop " .. q(path))
      local err = refused(reconcile.file_store(path), "StateUnavailable")
      assert.truthy(err.message:find(path .. " cannot be read: Too many levels of symbolic links", 1, true),
        err.message)
    end)

    it("the command: a directory sends nothing (the forbids were sent, then it failed)", function()
      local dir = HOME .. "/state-dir"
      os.execute("mkdir -p " .. q(dir))
      local status, out, err = command(dir)
      assert.same({ 1, "", 0 }, { status, out, forbids() })
      assert.equal("streamctl: zego: StateUnavailable: the state '" .. KEY .. "' cannot be read: " .. dir
        .. " is not a file (a directory); nothing was sent\n", err)
      assert.equal("directory", (process.capture("stat -c %F " .. q(dir)):gsub("%s+$", "")))
    end)

    it("a FIFO: refused without blocking, never opened for reading", function()
      local path = HOME .. "/fifo"
      os.execute("rm -f " .. q(path) .. " && mkfifo " .. q(path))
      local err = refused(reconcile.file_store(path), "StateUnavailable")
      assert.truthy(err.message:find(path .. " is not a file (a FIFO)", 1, true), err.message)
    end)

    it("a device (/dev/null): refused, and never replaced", function()
      assert.equal("character special file", (process.capture("stat -c %F /dev/null"):gsub("%s+$", "")),
        "(before the row: /dev/null was replaced by something else)")
      local err = refused(reconcile.file_store("/dev/null"), "StateUnavailable")
      assert.truthy(err.message:find("/dev/null is not a file (a character device)", 1, true), err.message)
      assert.equal("character special file", (process.capture("stat -c %F /dev/null"):gsub("%s+$", "")))
    end)

    it("a path under a regular file (ENOTDIR): absent, then the pending save fails: nothing sent", function()
      local file = HOME .. "/plain"
      process.write_file(file, "x")
      local err = refused(reconcile.file_store(file .. "/state.json"), "StateUnavailable")
      assert.truthy(err.message:find("could not be saved before sending (nothing was sent)", 1, true), err.message)
      assert.equal("x", process.read_file(file))
    end)

    it("corrupt JSON: InvalidState naming the file, the file kept", function()
      local path, store = file_with("corrupt.json", '{"' .. KEY .. '": "{\\"v\\":2,')
      local err = refused(store, "InvalidState")
      assert.truthy(err.message:find(path .. " is not a JSON object of states", 1, true), err.message)
      assert.equal('{"' .. KEY .. '": "{\\"v\\":2,', process.read_file(path))
    end)

    it("empty, or all blank: InvalidState (never a first run)", function()
      for _, text in ipairs { "", " \n\n" } do
        local path, store = file_with("blank.json", text)
        local err = refused(store, "InvalidState")
        assert.truthy(err.message:find(path .. " is not a JSON object of states (" .. #text .. " bytes, all blank)",
          1, true), err.message)
      end
    end)

    it("a JSON array or a number as the file, not an object: InvalidState", function()
      for _, text in ipairs { "[]", "[1]", "42", '"{}"' } do
        local path, store = file_with("array.json", text)
        local err = refused(store, "InvalidState")
        assert.truthy(err.message:find(path .. " is not a JSON object of states", 1, true), text .. ": " .. err.message)
        assert.equal(text, process.read_file(path))
      end
    end)

    it("a state under the key that is not text: InvalidState", function()
      local path, store = file_with("number.json", cjson.encode { [KEY] = 42 })
      local err = refused(store, "InvalidState")
      assert.truthy(err.message:find(path .. " holds number under '" .. KEY .. "', not a state's text", 1, true),
        err.message)
    end)

    it("a wrong version (0, 3, \"2\", none): InvalidState naming it", function()
      for _, row in ipairs {
        { '{"v":3,"streams":{}}', "has version 3, not 1 or 2" },
        { '{"v":0,"streams":{}}', "has version 0, not 1 or 2" },
        { '{"v":"2","streams":{}}', "has version 2, not 1 or 2" },
        { '{"streams":{}}', "has version nil, not 1 or 2" },
      } do
        local _, store = file_with("version.json", row[1], true)
        local err = refused(store, "InvalidState")
        assert.equal("the state '" .. KEY .. "' " .. row[2] .. ": not a reconciler's state (version 2); nothing was "
          .. "sent (look at it, or remove it to start from nothing applied)", err.message)
      end
    end)

    it("wrong types inside: every entry checked, none silently dropped", function()
      for _, row in ipairs {
        { '{"v":2,"streams":[1]}', "a stream entry that is not" },
        { '{"v":2,"streams":"rtc:a"}', 'has no "streams" object' },
        { '{"v":2,"streams":{"rtc:a":"0"}}', "(rtc:a: 0)" },
        { '{"v":2,"streams":{"rtc:a":-1}}', "(rtc:a: -1)" },
        { '{"v":2,"streams":{"rtc:a":1e999}}', "(rtc:a: inf)" },
        { '{"v":2,"streams":{"abc:a":0}}', "(abc:a: 0)" },
        { '{"v":2,"streams":{"rtc:":0}}', "(rtc:: 0)" },
        { '{"v":2,"streams":{"a":0}}', "(a: 0)" },
        { '{"v":2,"streams":{},"pending":{"rtc:a":"maybe"}}', "(rtc:a: maybe)" },
        { '{"v":2,"streams":{},"pending":{"xyz:a":"forbid"}}', "(xyz:a: forbid)" },
        { '{"v":2,"streams":{},"pending":["rtc:a"]}', "a pending entry that is not" },
        { '{"v":2,"streams":{},"pending":"rtc:a"}', 'a "pending" that is not a version 2 object' },
        { '{"v":1,"streams":{},"pending":{"rtc:a":"forbid"}}', 'a "pending" that is not a version 2 object' },
        { '{"v":2,"streams":{},"pendign":{"rtc:a":"forbid"}}', 'has "pendign", which is not v, streams or pending' },
      } do
        local _, store = file_with("types.json", row[1], true)
        local err = refused(store, "InvalidState")
        assert.truthy(err.message:find(row[2], 1, true), row[1] .. ": " .. err.message)
        assert.truthy(err.message:find("the state '" .. KEY .. "' has ", 1, true), err.message)
      end
    end)

    it("version 1 is read, and saved as version 2", function()
      local path, store = file_with("v1.json", '{"v":1,"streams":{"rtc:a":0,"rtc:old":0}}', true)
      local z = fake_zego()
      local report = assert(reconcile.zego(z, WANT, { state = store, remove_extra = true }))
      assert.same({ { "rtc:b" }, { "rtc:old" }, true }, { report.found.missing, report.found.extra, report.in_sync })
      assert.same({ v = 2, streams = { ["rtc:a"] = 0, ["rtc:b"] = 0 }, pending = {} }, state_of(path))
    end)

    it("a save that fails (a store whose set fails): nothing sent, StateUnavailable", function()
      local err = refused({ get = function() return nil end, set = function() return nil, "No space left on device" end },
        "StateUnavailable")
      assert.equal("the state '" .. KEY .. "' could not be saved before sending (nothing was sent): No space left on "
        .. "device", err.message)
    end)

    it("a disk that is full: the save fails, nothing sent, the old bytes exactly kept", function()
      local dir = HOME .. "/full"
      os.execute("mkdir -p " .. q(dir))
      local how
      if ROOTED and os.execute("mount -t tmpfs -o size=64k tmpfs " .. q(dir) .. " 2>/dev/null") then
        how = "tmpfs"
      elseif not ROOTED then
        how = "read-only directory"
      else
        pending("root without a tmpfs mount: see the replace_file row of spec/47")
        return
      end
      local path = dir .. "/state.json"
      local held = cjson.encode { [KEY] = '{"v":2,"streams":{"rtc:old":0},"pending":{}}' } .. "\n"
      process.write_file(path, held)
      if how == "tmpfs" then
        os.execute("dd if=/dev/zero of=" .. q(dir .. "/filler") .. " bs=4k 2>/dev/null")
      else
        os.execute("chmod 500 " .. q(dir))
      end
      local ok, err = pcall(refused, reconcile.file_store(path), "StateUnavailable")
      local kept = process.read_file(path)
      local left = process.capture("ls " .. q(dir))
      if how == "tmpfs" then os.execute("umount " .. q(dir)) else os.execute("chmod 700 " .. q(dir)) end
      assert(ok, err)
      -- (a full tmpfs still makes the empty lock file; a read-only directory refuses it first)
      assert.truthy(err.message:find("could not be saved before sending (nothing was sent): cannot "
        .. (how == "tmpfs" and "replace " .. path or "lock " .. path .. ".lock"), 1, true), err.message)
      assert.equal(held, kept)
      assert.equal(how == "tmpfs" and "filler\nstate.json\nstate.json.lock\n" or "state.json\n", left) -- (no temporary)
    end)

    it("killed between the pending save and the send: the record says pending; the next round converges", function()
      local path = HOME .. "/killed.json"
      os.remove(path)
      local store = reconcile.file_store(path)
      local dying = fake_zego { forbid_rtc_streams = function() error("killed") end }
      assert.has_error(function() reconcile.zego(dying, WANT, { state = store }) end, "killed")
      assert.same({ v = 2, streams = {}, pending = { ["rtc:a"] = "forbid", ["rtc:b"] = "forbid" } }, state_of(path))
      -- the next round: b no longer desired, a still: a forbidden (again, maybe), b an extra, resumed
      local z = fake_zego()
      local report = assert(reconcile.zego(z, { { stream_id = "a" } }, { state = store, remove_extra = true }))
      assert.same({ { "rtc:a" }, { "rtc:b" }, true, { "forbid_rtc_streams a", "resume_rtc_streams b" } },
        { report.found.missing, report.found.extra, report.in_sync, z.sent })
      assert.same({ v = 2, streams = { ["rtc:a"] = 0 }, pending = {} }, state_of(path))
      z = fake_zego()
      report = assert(reconcile.zego(z, { { stream_id = "a" } }, { state = store, remove_extra = true }))
      assert.same({ 0, 0, {} }, { #report.found.missing, #report.found.extra, z.sent })
    end)

    it("a pending stream no longer desired, without remove_extra: reported as an extra, never forgotten", function()
      local path, store = file_with("kept-pending.json", '{"v":2,"streams":{},"pending":{"rtc:gone":"forbid"}}', true)
      for _ = 1, 2 do
        local z = fake_zego()
        local report = assert(reconcile.zego(z, WANT, { state = store }))
        assert.same({ "rtc:gone" }, report.found.extra)
      end
      assert.same({ ["rtc:gone"] = "forbid" }, state_of(path).pending)
    end)

    it("unknown outcomes stay pending; known ones are confirmed", function()
      local path = HOME .. "/unknown.json"
      os.remove(path)
      local z = fake_zego { forbid_rtc_streams = function(_, f)
        return batch_report(f, 1, { { stream = f.stream_ids[1], ok = true, attempts = 1 },
          { stream = f.stream_ids[2], ok = false, outcome_unknown = true, attempts = 3 } })
      end }
      local report = assert(reconcile.zego(z, WANT, { state = reconcile.file_store(path) }))
      assert.same({ false, 1 }, { report.in_sync, #report.unknown })
      assert.same({ v = 2, streams = { ["rtc:a"] = 0 }, pending = { ["rtc:b"] = "forbid" } }, state_of(path))
    end)

    it("a confirming save that fails: report.state_error; the pending record makes the next round safe", function()
      local path = HOME .. "/confirm.json"
      os.remove(path)
      local file, sets = reconcile.file_store(path), 0
      local store = { get = file.get, set = function(_, k, v)
        sets = sets + 1
        if sets == 2 then return nil, "No space left on device" end
        return file:set(k, v)
      end }
      local report = assert(reconcile.zego(fake_zego(), WANT, { state = store }))
      assert.same({ false, "StateUnavailable", false }, { report.in_sync, report.state_error.code,
        report.state_error.sent })
      assert.same({ ["rtc:a"] = "forbid", ["rtc:b"] = "forbid" }, state_of(path).pending)
      local z = fake_zego()
      report = assert(reconcile.zego(z, WANT, { state = file }))
      assert.same({ true, { "forbid_rtc_streams a", "forbid_rtc_streams b" } }, { report.in_sync, z.sent })
      assert.same({ v = 2, streams = { ["rtc:a"] = 0, ["rtc:b"] = 0 }, pending = {} }, state_of(path))
    end)

    it("the command: killed after the pending save, the next command converges against the emulator", function()
      local path = HOME .. "/cmd-killed.json"
      process.write_file(path, cjson.encode { [KEY] = '{"v":2,"streams":{},"pending":{"rtc:a":"forbid",'
        .. '"rtc:z":"forbid"}}' })
      local status, _, err = command(path, "--remove-extra")
      assert.equal(0, status, err)
      assert.same({ v = 2, streams = { ["rtc:a"] = 0, ["rtc:b"] = 0 }, pending = {} }, state_of(path))
      local app = server:state().zego.streams["1234567890"]
      assert.same({ "forbidden", "forbidden", "normal" }, { app.a.rtc, app.b.rtc, app.z and app.z.rtc or "normal" })
      assert.equal(1, #(server:log { action = "ResumeRTCStreams", limit = 100 }))
    end)
  end)

  describe("zego_forget", function()
    it("absent: nothing to forget, nothing written", function()
      local path = HOME .. "/forget-absent.json"
      os.remove(path)
      assert.is_true(reconcile.zego_forget(reconcile.file_store(path), KEY, { { stream_id = "a" } }))
      assert.is_nil(process.read_file(path))
    end)

    it("unreadable or corrupt: nil and the error, the file kept", function()
      local ok, err = reconcile.zego_forget(reconcile.file_store(HOME), KEY, { { stream_id = "a" } })
      assert.same({ nil, "StateUnavailable", false }, { ok, err.code, err.sent })
      local path, store = file_with("forget.json", '{"v":2,"streams":{"rtc:a":"x"}}', true)
      local before = process.read_file(path)
      ok, err = reconcile.zego_forget(store, KEY, { { stream_id = "a" } })
      assert.same({ nil, "InvalidState" }, { ok, err.code })
      assert.equal(before, process.read_file(path))
    end)

    it("forgets what was applied and keeps what is pending", function()
      local path, store = file_with("forget-ok.json", '{"v":2,"streams":{"rtc:a":0,"rtc:b":0},"pending":{"rtc:c":'
        .. '"resume"}}', true)
      assert.is_true(reconcile.zego_forget(store, KEY, { { stream_id = "a" } }))
      assert.same({ v = 2, streams = { ["rtc:b"] = 0 }, pending = { ["rtc:c"] = "resume" } }, state_of(path))
    end)
  end)

  describe("the desired state's stores", function()
    local function dict(get)
      return { get = get, safe_set = function() return true end, delete = function() end,
               get_keys = function() return {} end }
    end

    it("a shared dict's error: StateUnavailable naming the key; has() says it too", function()
      local s = desired.shdict(dict(function() return nil, "dict busy" end))
      local err = refused(s, "StateUnavailable")
      assert.equal("the state '" .. KEY .. "' cannot be read: the shared dict cannot read " .. KEY .. ": dict busy; "
        .. "nothing was sent", err.message)
      local yes, why = s:has("zego|a")
      assert.same({ nil, "the shared dict cannot tell whether the list is whole: dict busy" }, { yes, why })
    end)

    it("a shared dict holding a value of the wrong type: InvalidState; has() refuses it", function()
      local s = desired.shdict(dict(function(_, k) return k == "w|" and "the spec" or 42 end))
      local err = refused(s, "InvalidState")
      assert.truthy(err.message:find("the shared dict holds a number for " .. KEY .. ", not its text", 1, true),
        err.message)
      local yes, why, kind = s:has("zego|a")
      assert.same({ nil, "the shared dict holds a number for member zego|a, not true", "corrupt" }, { yes, why, kind })
      -- members() the same (it listed such a key as a member)
      local d = dict(function(_, k) return k == "m|zego|b" and "yes" or k == "w|" and "the spec" or true end)
      d.get_keys = function() return { "m|zego|a", "m|zego|b" } end
      assert.same({ nil, "the shared dict holds a string for member zego|b, not true", "corrupt" },
        { desired.shdict(d):members() })
    end)

    it("a shared dict: absent is a first run", function()
      local held = {}
      local d = dict(function(_, k) return held[k] end)
      d.safe_set = function(_, k, v) held[k] = v return true end
      local z = fake_zego()
      assert(reconcile.zego(z, WANT, { state = desired.shdict(d) }))
      assert.equal(2, #z.sent)
      assert.equal('{"v":2,"streams":{"rtc:a":0,"rtc:b":0},"pending":{}}', held["v|" .. KEY])
    end)

    describe("in Redis", function()
      local redis
      lazy_setup(function()
        if redis_helper.available() then redis = redis_helper.start {} end
      end)
      lazy_teardown(function() if redis then redis:stop() end end)

      it("an error (the value's key holds a set: WRONGTYPE) is StateUnavailable, never a nil", function()
        if not redis then pending("no redis-server") return end
        local s = assert(desired.redis(redis.url, { prefix = "wrongtype" }))
        redis:cli("SADD", "{wrongtype}:v:" .. KEY, "x")
        local err = refused(s, "StateUnavailable")
        assert.truthy(err.message:find("WRONGTYPE", 1, true), err.message)
        -- and a value that is not a state: InvalidState
        redis:cli("DEL", "{wrongtype}:v:" .. KEY)
        redis:cli("SET", "{wrongtype}:v:" .. KEY, "[1]")
        refused(s, "InvalidState")
        -- the set's key holding a string: has() and members() say so
        assert.is_true(s:made_whole("the spec"))
        redis:cli("SET", "{wrongtype}:set", "x")
        for _, call in ipairs { function() return s:has("a") end, function() return s:members() end } do
          local v, why = call()
          assert.is_nil(v)
          assert.truthy(why:find("WRONGTYPE", 1, true), why)
        end
      end)

      it("a Redis that is gone: StateUnavailable, nothing sent", function()
        local port = emu.free_ports(1)[1]
        local s = assert(desired.redis("redis://127.0.0.1:" .. port))
        local err = refused(s, "StateUnavailable")
        assert.truthy(err.message:find("Redis at 127.0.0.1:" .. port .. ": ", 1, true), err.message)
      end)
    end)
  end)

  describe("the Aliyun block list (the provider's view: no state)", function()
    local D = "push.example.com"
    local WANT_ALI = { { domain_name = D, app_name = "live", stream_name = "a" } }

    local function malformed(pages, said)
      local c = fake_aliyun(pages)
      local report, err = reconcile.aliyun(c, WANT_ALI, { remove_extra = true, page_size = 2 })
      assert.is_nil(report)
      assert.same({ "InvalidResponse", 0 }, { err.code, c.sent })
      assert.truthy(err.message:find(said, 1, true), err.message)
      assert.truthy(err.message:find("nothing was sent", 1, true), err.message)
    end

    it("no StreamUrls list: refused", function()
      malformed({ { TotalNum = 3 } }, "page 1 of the block list of push.example.com has no StreamUrls list")
    end)

    it("a StreamUrls that is an object, not a list: refused (it read as empty)", function()
      malformed({ { TotalNum = 1, StreamUrls = { StreamUrl = { x = D .. "/live/x" } } } },
        "has a StreamUrls that is not a list (key x)")
    end)

    it("an entry that is not a text (a number, a table, an empty text): refused (it read as 'table: 0x...')",
      function()
      malformed({ { TotalNum = 1, StreamUrls = { StreamUrl = { 7 } } } }, "entry 1 that is not a stream (number)")
      malformed({ { TotalNum = 1, StreamUrls = { StreamUrl = { {} } } } }, "entry 1 that is not a stream (table)")
      malformed({ { TotalNum = 1, StreamUrls = { StreamUrl = { "" } } } }, "entry 1 that is not a stream (string)")
    end)

    it("a TotalNum that is not a count: refused", function()
      malformed({ { TotalNum = "many", StreamUrls = { StreamUrl = {} } } }, "has a TotalNum that is not a count (many)")
      malformed({ { TotalNum = -1, StreamUrls = { StreamUrl = {} } } }, "has a TotalNum that is not a count (-1)")
    end)

    it("a last page that ends before TotalNum says: refused (the view would be incomplete)", function()
      malformed({ { TotalNum = 5, StreamUrls = { StreamUrl = { D .. "/live/a", D .. "/live/b" } } },
                  { TotalNum = 5, StreamUrls = { StreamUrl = { D .. "/live/c" } } } },
        "page 2 of the block list of push.example.com ends the list at 3 entries, but its TotalNum is 5")
      malformed({ { TotalNum = 4, StreamUrls = {} } }, "ends the list at 0 entries, but its TotalNum is 4")
    end)

    it("a page with more entries than asked: refused", function()
      malformed({ { TotalNum = 3, StreamUrls = { StreamUrl = { D .. "/live/x", D .. "/live/y", D .. "/live/z" } } } },
        "holds 3 entries, more than the 2 asked")
    end)

    it("a well-formed list over two pages: read whole, the difference sent", function()
      local c = fake_aliyun { { TotalNum = 3, StreamUrls = { StreamUrl = { D .. "/live/x", D .. "/live/y" } } },
                              { TotalNum = 3, StreamUrls = { StreamUrl = { D .. "/live/z" } } } }
      local report = assert(reconcile.aliyun(c, WANT_ALI, { remove_extra = true, page_size = 2 }))
      assert.same({ { D .. "/live/a" }, { D .. "/live/x", D .. "/live/y", D .. "/live/z" }, 4, 2 },
        { report.found.missing, report.found.extra, c.sent, report.calls - 3 })
    end)
  end)

  it("core.read_file tells the kinds apart", function()
    assert.same({ nil, HOME .. "/nothing does not exist", "absent" }, { core.read_file(HOME .. "/nothing") })
    assert.same({ nil, HOME .. " is not a file (a directory)", "not_a_file" }, { core.read_file(HOME) })
  end)
end)
