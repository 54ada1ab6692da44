-- The `streamctl` command when its standard output fails: a full device
-- (/dev/full) and a pipe whose reader has gone (`| head -1`). The command
-- as installed (spec/helpers/process.lua's `installed`: an empty
-- environment, SIGPIPE at its default action as a shell leaves it) against
-- the emulator this spec starts on free ports.
--
-- Every failed write is said on standard error with exit status 1, also
-- the last one, which only the final flush of Lua's buffer sees. A closed
-- output stops the run as Ctrl-C does: nothing more is sent, what is in
-- flight is finished, and standard error says how many streams were done
-- and how many not sent.
local emu = require "spec.helpers.emulator"
local process = require "spec.helpers.process"

local q = process.quote
local streamctl = process.installed {} -- (no HOME: the flags give the credentials, --no-audit-log says none is kept)
-- (and the decisions' file, under a directory of the spec's own)
local DECISIONS = process.temp_dir() .. "/decisions"

local server
local function ali(args)
  return "aliyun " .. args .. " --endpoint " .. server.aliyun_tls_url .. " --ca-file " .. q(server.ca_file)
    .. " --access-key-id LTAIemulatorKey --access-key-secret emulator-secret --no-audit-log --decision-file "
    .. q(DECISIONS)
end
local function sent(action)
  return #server:log({ action = action, limit = 10000 })
end

local FULL = "cannot write to standard output (No space left on device): "

describe("streamctl when its output fails", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function() if server then server:stop() end end)
  before_each(function() server:reset() end)

  it("a full device: the table, written as it goes, stops the run at its first failed write, as JSON lines do",
    function()
    local code, out, err = streamctl.run(ali("forbid-live-streams --domain-name d.example --app-name live "
      .. "--concurrency 1 --rate 10 a b c d e"), nil, nil, "/dev/full")
    assert.equal(1, code, err)
    assert.equal("", out) -- (the command's stdout went to /dev/full)
    local done = sent("ForbidLiveStream")
    assert.is_true(done >= 1 and done < 5, done .. " sent")
    assert.equal(string.format("streamctl: %sstopped sending: %d of 5 streams done (%d succeeded, 0 failed, 0 "
      .. "unknown), %d not sent\n", FULL, done, done, 5 - done), err)
  end)

  it("a full device: a table that finished before its first write failed says the report is incomplete", function()
    local code, _, err = streamctl.run(ali("forbid-live-streams --domain-name d.example --app-name live a"), nil,
      nil, "/dev/full")
    assert.equal(1, code, err)
    assert.truthy(err:find("^streamctl: " .. FULL:gsub("%p", "%%%0") .. "the report is incomplete; 1 streams: 1 "
      .. "succeeded, 0 failed, 0 unknown; 1 calls, [%d.]+ s\n$"), err)
    assert.equal(1, sent("ForbidLiveStream"))
  end)

  it("a full device: JSON lines stop the run at the first failed line, and say how many were done", function()
    local code, _, err = streamctl.run(ali("forbid-live-streams --domain-name d.example --app-name live "
      .. "--output json --concurrency 1 --rate 10 a b c d e"), nil, nil, "/dev/full")
    assert.equal(1, code, err)
    local done = sent("ForbidLiveStream")
    assert.is_true(done >= 1 and done < 5, done .. " sent")
    assert.equal(string.format("streamctl: %sstopped sending: %d of 5 streams done (%d succeeded, 0 failed, 0 "
      .. "unknown), %d not sent\n", FULL, done, done, 5 - done), err)
  end)

  it("a full device: one call, a dry run and --version each exit 1 and say so", function()
    local code, _, err = streamctl.run(ali("resume-live-stream --domain-name d.example --app-name live "
      .. "--stream-name s1"), nil, nil, "/dev/full")
    assert.equal(1, code, err)
    assert.equal("streamctl: " .. FULL .. "the report is incomplete; d.example/live/s1 succeeded\n", err)
    code, _, err = streamctl.run(ali("resume-live-stream --domain-name d.example --app-name live "
      .. "--stream-name s1 --output json"), nil, nil, "/dev/full")
    assert.equal(1, code, err)
    assert.equal("streamctl: " .. FULL .. "the report is incomplete; d.example/live/s1 succeeded\n", err)
    assert.equal(2, sent("ResumeLiveStream"))
    code, _, err = streamctl.run(ali("resume-live-stream --domain-name d.example --app-name live "
      .. "--stream-name s1 --dry-run"), nil, nil, "/dev/full")
    assert.equal(1, code, err)
    assert.equal("streamctl: " .. FULL .. "the requests above are incomplete (nothing was sent)\n", err)
    assert.equal(2, sent("ResumeLiveStream"))
    code, _, err = streamctl.run("--version", nil, nil, "/dev/full")
    assert.equal(1, code, err)
    assert.equal("streamctl: cannot write to standard output (No space left on device)\n", err)
  end)

  it("a pipe closed by its reader (| head -1): stops sending, finishes what is in flight, exits 1", function()
    local dir = process.temp_dir()
    finally(function() os.execute("rm -rf " .. q(dir)) end)
    local names = {}
    for i = 1, 100 do names[i] = "s" .. i end
    process.write_file(dir .. "/names.txt", table.concat(names, "\n") .. "\n")
    -- 100 streams at 20 a second: 5 s of work, most of it left when head exits
    -- after the first line. Bounded: killed after 60 s whatever happens.
    local command = streamctl.env .. " timeout -s KILL 60 " .. streamctl.command .. " "
      .. ali("resume-live-streams --domain-name d.example --app-name live --output json --rate 20 --from "
        .. q(dir .. "/names.txt"))
    os.execute("(" .. command .. " 2>" .. q(dir .. "/err") .. "; echo $? >" .. q(dir .. "/code") .. ") | head -1 >"
      .. q(dir .. "/first"))
    local code = tonumber(process.read_file(dir .. "/code"))
    local err = process.read_file(dir .. "/err")
    assert.equal(1, code, err) -- (141: killed by SIGPIPE)
    assert.truthy(process.read_file(dir .. "/first"):find('^{"stream":"s%d+","ok":true,"attempts":1,'))
    local done = sent("ResumeLiveStream")
    assert.is_true(done >= 1 and done < 100, done .. " of 100 sent")
    assert.equal(string.format("streamctl: cannot write to standard output (Broken pipe): stopped sending: %d of 100 "
      .. "streams done (%d succeeded, 0 failed, 0 unknown), %d not sent\n", done, done, 100 - done), err)
  end)
end)
