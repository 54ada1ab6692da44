-- The habits operators bring from aws and aliyun-cli (issue 50), a row per
-- class: the service's own names as commands and flags, and a near miss
-- answered with what was meant.
local HOME = require("spec.helpers.nginx").temp_dir()
local c = require("spec.helpers.checks").cli(function() return nil end, HOME)
local run, lines = c.run, require("spec.helpers.checks").lines

local KEYS = { "--access-key-id", "LTAIexample", "--access-key-secret", "example-secret" }

local function with_keys(...)
  local argv = { ... }
  for _, a in ipairs(KEYS) do argv[#argv + 1] = a end
  return argv
end

describe("the service's own names", function()
  it("an action's name is its command, and its parameters' names its flags (aliyun-cli's way)", function()
    local _, want = run(with_keys("aliyun", "forbid-live-stream", "--domain-name", "push.example.com", "--app-name",
      "live", "--stream-name", "s1", "--resume-time", "2030-01-01T00:00:00Z", "--dry-run"))
    for _, argv in ipairs {
      { "aliyun", "ForbidLiveStream", "--DomainName", "push.example.com", "--AppName", "live", "--StreamName", "s1",
        "--ResumeTime=2030-01-01T00:00:00Z", "--dry-run" },
      { "aliyun", "forbidlivestream", "--DOMAINNAME", "push.example.com", "--APPNAME", "live", "--stream-name", "s1",
        "--resume-time", "2030-01-01T00:00:00Z", "--dry-run" },
      { "aliyun", "forbid_live_stream", "--domain-name", "push.example.com", "--app-name", "live", "--StreamName",
        "s1", "--ResumeTime", "2030-01-01T00:00:00Z", "--dry-run" },
    } do
      local status, out, err = run(with_keys(table.unpack(argv)))
      assert.equal(0, status, err)
      -- the same signed request, but for its nonce, date and signature
      local function shape(text)
        return (text:gsub("x%-acs%-signature%-nonce: %S+", "N"):gsub("x%-acs%-date: %S+", "D"))
      end
      assert.equal(shape(want), shape(out), argv[2])
    end
    -- ZEGO's batch action is its batch command
    local status, out = run { "zego", "ForbidRTCStreams", "a", "--StreamId", "b", "--StreamId=c", "--app-id",
      "1234567890", "--server-secret", "0123456789abcdef0123456789abcdef", "--dry-run" }
    assert.equal(0, status)
    assert.truthy(out:find("Action=ForbidRTCStreams", 1, true), out)
    -- (its list's parameter, StreamId, gives the list's items: a, b and c in one call)
    assert.truthy(out:find("StreamId%5B%5D=a&StreamId%5B%5D=b&StreamId%5B%5D=c", 1, true), out)
  end)

  it("a near miss names what it may have meant, in one line, not a usage block", function()
    local cases = {
      { { "aliyun", "forbid-stream" }, "streamctl: unknown command 'forbid-stream' of aliyun (did you mean "
        .. "'forbid-live-stream' or 'forbid-live-streams'?); `streamctl aliyun --help` lists them all, and "
        .. "`streamctl aliyun call ACTION Key=Value...` sends any action by its own name" },
      { { "zego", "forbid" }, "streamctl: unknown command 'forbid' of zego (did you mean 'forbid-cdn-live-stream', "
        .. "'forbid-rtc-stream' or 'forbid-rtc-streams'?); `streamctl zego --help` lists them all, and `streamctl "
        .. "zego call ACTION Key=Value...` sends any action by its own name" },
      { { "aliyun", "resume-live-strem" }, "streamctl: unknown command 'resume-live-strem' of aliyun (did you mean "
        .. "'resume-live-stream'?); `streamctl aliyun --help` lists them all, and `streamctl aliyun call ACTION "
        .. "Key=Value...` sends any action by its own name" },
      { { "aliyun", "frobnicate" }, "streamctl: unknown command 'frobnicate' of aliyun; `streamctl aliyun --help` "
        .. "lists them all, and `streamctl aliyun call ACTION Key=Value...` sends any action by its own name" },
    }
    for _, case in ipairs(cases) do
      local status, out, err = run(case[1])
      assert.equal(2, status)
      assert.equal("", out)
      assert.same({ case[2] }, lines(err))
    end
  end)
end)

describe("an endpoint that refuses every connection", function()
  it("stops a batch after 3 calls that could not reach it: the rest reported not sent, in a short run", function()
    -- a port of 127.0.0.1 nobody listens on (just freed)
    local port = require("spec.helpers.emulator").free_ports(1)[1]
    local ids = {}
    for i = 1, 200 do ids[i] = "room-" .. i end
    local argv = { "zego", "forbid-rtc-streams", "--endpoint", "http://127.0.0.1:" .. port, "--app-id", "1234567890",
                   "--server-secret", "0123456789abcdef0123456789abcdef", "--concurrency", "1", "--output", "json",
                   "--no-audit-log", "--yes" }
    for _, id in ipairs(ids) do argv[#argv + 1] = id end
    local status, out, err = run(argv)
    assert.equal(1, status, err)
    local rows = {}
    for _, l in ipairs(lines(out)) do rows[#rows + 1] = require("cjson").decode(l) end
    assert.equal(200, #rows)
    -- 3 calls of 20 IDs tried (each its attempts), then none: 140 not sent
    local tried, unsent = 0, 0
    for _, r in ipairs(rows) do
      assert.is_false(r.ok)
      if r.code == "Unreachable" then
        unsent = unsent + 1
        assert.equal(0, r.attempts)
        assert.matches("^not sent: the 3 calls before it could not reach http://127%.0%.0%.1:" .. port .. "/? %(", r.message)
      else
        tried = tried + 1
        assert.equal("NetworkError", r.code)
      end
    end
    assert.same({ 60, 140 }, { tried, unsent })
  end)
end)

describe("options where aws and aliyun-cli put them", function()
  it("before the provider: moved after its command (-o is --output)", function()
    local zego = { "--app-id", "1234567890", "--server-secret", "0123456789abcdef0123456789abcdef" }
    local argv = { "-o", "json", "--dry-run", "zego", "forbid-rtc-streams", "a" }
    for _, a in ipairs(zego) do argv[#argv + 1] = a end
    local status, out, err = run(argv)
    assert.equal(0, status, err)
    local req = require("cjson").decode(lines(out)[1])
    assert.truthy(req.url:find("Action=ForbidRTCStreams", 1, true), req.url)
  end)

  it("--region on a Live command says how regions work for it", function()
    local status, out, err = run(with_keys("aliyun", "resume-live-stream", "--region", "cn-shanghai",
      "--domain-name", "push.example.com", "--app-name", "live", "--stream-name", "s"))
    assert.equal(2, status)
    assert.equal("", out)
    assert.same({ "streamctl: unknown option '--region': ApsaraVideo Live answers every region at one endpoint, "
      .. "live.aliyuncs.com (--endpoint URL for another); the pull-to-push commands take --region as a field of "
      .. "their own, and the forbids --region-id" }, lines(err))
  end)
end)

describe("a stopped batch on a terminal", function()
  it("counts the streams not sent instead of listing them; --output json lists every one", function()
    local cli = require "streamctl.cli"
    local buffer = require("spec.helpers.checks").buffer
    local port = require("spec.helpers.emulator").free_ports(1)[1]
    local argv = { "zego", "forbid-rtc-streams", "--endpoint", "http://127.0.0.1:" .. port, "--app-id", "1234567890",
                   "--server-secret", "0123456789abcdef0123456789abcdef", "--concurrency", "1", "--no-audit-log",
                   "--yes" }
    for i = 1, 200 do argv[#argv + 1] = "room-" .. i end
    local function on_terminal(args)
      local out, err = buffer(), buffer()
      local status = cli.main(args, { stdout = out, stderr = err, terminal = true,
        signal = { catch = function() end, caught = function() return nil end },
        getenv = function(name) return name == "HOME" and HOME or nil end })
      return status, lines(out:text())
    end
    local status, shown = on_terminal(argv)
    assert.equal(1, status)
    -- the header, the 60 streams tried, the summary, and the count of those not listed
    assert.equal(63, #shown)
    assert.matches("^room%-60 +FAILED", shown[61])
    assert.matches("^200 streams: 0 succeeded, 200 failed %(140 of them not sent%)", shown[62])
    assert.equal("(140 streams not sent are counted, not listed, on a terminal: --output json, or standard output "
      .. "to a file, lists every one)", shown[63])
    argv[#argv + 1] = "--output"
    argv[#argv + 1] = "json"
    status, shown = on_terminal(argv)
    assert.equal(1, status)
    assert.equal(200, #shown)
  end)
end)

describe("a big run's audit outcome", function()
  it("goes into records of at most 1,000 streams, the outcome saying their counts", function()
    local log = HOME .. "/big-audit.jsonl"
    local argv = { "zego", "forbid-rtc-streams", "--endpoint", "http://127.0.0.1:9", "--app-id", "1234567890",
                   "--server-secret", "0123456789abcdef0123456789abcdef", "--audit-log", log }
    for i = 1, 2500 do argv[#argv + 1] = "room-" .. i end
    local status = run(argv) -- (refused by the guard: 2,500 forbids without --yes; nothing sent)
    assert.equal(2, status)
    local records = {}
    for _, l in ipairs(lines(require("spec.helpers.process").read_file(log))) do
      assert.is_true(#l < 100000, "a line of " .. #l .. " bytes")
      records[#records + 1] = require("cjson").decode(l)
    end
    assert.same({ "outcomes", "outcomes", "outcomes", "outcome" },
      { records[1].record, records[2].record, records[3].record, records[4].record })
    assert.same({ 1000, 1000, 500 }, { #records[1].streams, #records[2].streams, #records[3].streams })
    local seen, n = {}, 0
    for i = 1, 3 do
      for _, s in ipairs(records[i].streams) do
        if not seen[s.stream] then seen[s.stream], n = true, n + 1 end
        assert.same({ "ForbidRTCStreams", "not_sent" }, { s.action, s.outcome })
      end
    end
    assert.equal(2500, n)
    assert.same({ "refused", { ok = 0, failed = 0, unknown = 0, not_sent = 2500 } },
      { records[4].outcome, records[4].counts })
    assert.is_nil(records[4].streams)
    for i = 1, 3 do assert.equal(records[4].run, records[i].run) end
  end)
end)

describe("streamctl configure", function()
  local lfs = require "lfs"
  local process = require "spec.helpers.process"
  -- `streamctl configure ...` with HOME at `home` and `answers` on standard input.
  local function configure(home, answers, ...)
    local cli, checks = require "streamctl.cli", require "spec.helpers.checks"
    local out, err = checks.buffer(), checks.buffer()
    local lines_in = {}
    for l in (answers .. "\n"):gmatch("([^\n]*)\n") do lines_in[#lines_in + 1] = l end
    if answers:sub(-1) == "\n" then lines_in[#lines_in] = nil end
    local i = 0
    local stdin = { read = function() i = i + 1 return lines_in[i] end }
    local status = cli.main({ "configure", ... }, { stdout = out, stderr = err, stdin = stdin,
      getenv = function(name) return name == "HOME" and home or nil end })
    return status, out:text(), err:text()
  end

  it("writes an Alibaba Cloud profile the credential chain reads, mode 0600, the file's other lines kept", function()
    local home = HOME .. "/conf-a"
    local dir = home .. "/.alibabacloud"
    assert.is_true(process.run("mkdir -p " .. dir .. " && chmod 755 " .. dir))
    process.write_file(dir .. "/credentials", "; mine\n[prod]\ntype = access_key\naccess_key_id = LTAIprod\n"
      .. "access_key_secret = prod-secret-1234\n")
    local status, out, err = configure(home, "LTAIexample01\nexample-secret-5678\n", "aliyun")
    assert.equal(0, status, err)
    -- (its directory, 0755, is made private: issue 66)
    assert.equal(dir .. ": mode 0700 (was 0755)\n[default] written to " .. dir .. "/credentials (mode 0600)\n", out)
    assert.equal("", err) -- (no prompts for a script; no secret anywhere)
    assert.equal("; mine\n[prod]\ntype = access_key\naccess_key_id = LTAIprod\naccess_key_secret = prod-secret-1234\n"
      .. "\n[default]\ntype = access_key\naccess_key_id = LTAIexample01\naccess_key_secret = example-secret-5678\n",
      process.read_file(dir .. "/credentials"))
    assert.equal("rw-------", lfs.attributes(dir .. "/credentials", "permissions"))
    -- an empty answer keeps the value; the profile's lines change where they stand
    status = configure(home, "\nnew-secret-9999\n", "aliyun", "--profile", "prod")
    assert.equal(0, status)
    local text = process.read_file(dir .. "/credentials")
    assert.truthy(text:find("[prod]\ntype = access_key\naccess_key_id = LTAIprod\naccess_key_secret = new-secret-9999\n",
      1, true), text)
    -- and the chain reads it
    local creds = require("streamctl.credentials")
    local o = assert(creds.aliyun { getenv = function(name) return name == "HOME" and home or nil end })
    assert.same({ "LTAIexample01", "example-secret-5678" }, { o.access_key_id, o.access_key_secret })
  end)

  it("writes a ZEGO profile; a value that breaks its flag's rule, or a file that does not parse, writes nothing",
    function()
      local home = HOME .. "/conf-z"
      local status, out, err = configure(home, "1234567890\n0123456789abcdef0123456789abcdef\n", "zego", "--profile",
        "staging")
      assert.equal(0, status, err)
      local path = home .. "/.config/streamctl/config"
      assert.equal("[zego.staging] written to " .. path .. " (mode 0600)\n", out)
      assert.equal("[zego.staging]\napp_id = 1234567890\nserver_secret = 0123456789abcdef0123456789abcdef\n",
        process.read_file(path))
      local before = process.read_file(path)
      status, out, err = configure(home, "12ab\nsecret-secret-secret\n", "zego")
      assert.equal(2, status)
      assert.equal("", out)
      assert.truthy(err:find("app_id", 1, true) and err:find("nothing was written", 1, true), err)
      assert.is_nil(err:find("secret-secret-secret", 1, true))
      assert.equal(before, process.read_file(path))
      process.write_file(path, before .. "oops\n")
      status, out, err = configure(home, "1234567890\n0123456789abcdef0123456789abcdef\n", "zego")
      assert.same({ 1, "" }, { status, out })
      assert.equal("streamctl: configure: " .. path .. ":4: expected 'key = value' or '[section]': nothing was "
        .. "written (fix that line first)\n", err)
      -- and input that ends early writes nothing
      status, out, err = configure(home .. "-2", "1234567890\n", "zego")
      assert.same({ 1, "" }, { status, out })
      assert.equal("streamctl: configure: standard input ended before ServerSecret: nothing was written\n", err)
      assert.is_nil(process.read_file(home .. "-2/.config/streamctl/config"))
    end)
end)

describe("ALIBABA_CLOUD_REGION_ID, as aliyun-cli takes it", function()
  local function with_region(region, ...)
    local cli, checks = require "streamctl.cli", require "spec.helpers.checks"
    local out, err = checks.buffer(), checks.buffer()
    local env = { HOME = HOME, ALIBABA_CLOUD_REGION_ID = region, ALIBABA_CLOUD_ACCESS_KEY_ID = "LTAIexample",
                  ALIBABA_CLOUD_ACCESS_KEY_SECRET = "example-secret" }
    local status = cli.main({ ... }, { stdout = out, stderr = err, getenv = function(name) return env[name] end })
    return status, lines(out:text())[1], err:text()
  end

  it("is the Region of a command that takes one, unless a flag gives one; a value its field refuses is said",
    function()
      local status, first = with_region("cn-beijing", "aliyun", "stop-live-pull-to-push", "--task-id", "T1",
        "--dry-run")
      assert.equal(0, status)
      assert.equal("GET https://live.aliyuncs.com/?Region=cn-beijing&RegionId=cn-beijing&TaskId=T1", first)
      status, first = with_region("cn-beijing", "aliyun", "stop-live-pull-to-push", "--region", "cn-shanghai",
        "--task-id", "T1", "--dry-run")
      assert.equal(0, status)
      assert.equal("GET https://live.aliyuncs.com/?Region=cn-shanghai&TaskId=T1", first)
      status, first = with_region("cn-beijing", "aliyun", "forbid-live-stream", "--domain-name", "d.example",
        "--app-name", "live", "--stream-name", "s", "--dry-run")
      assert.equal(0, status)
      assert.equal("POST https://live.aliyuncs.com/?AppName=live&DomainName=d.example&LiveStreamType=publisher"
        .. "&RegionId=cn-beijing&StreamName=s", first)
      local err
      status, first, err = with_region("mars", "aliyun", "stop-live-pull-to-push", "--task-id", "T1", "--dry-run")
      assert.same({ 2, nil }, { status, first })
      assert.equal("streamctl: environment variable ALIBABA_CLOUD_REGION_ID (for --region) must be one of "
        .. "ap-southeast-1, ap-southeast-5, cn-beijing, cn-shanghai, cn-shenzhen (got 'mars')\n", err)
    end)
end)

describe("the manual page without man, and where man and bash-completion look", function()
  it("writes plain text into a pipe (--roff: its source); --install puts the page and the completion in place",
    function()
      local status, out = run { "man" }
      assert.equal(0, status)
      local l = lines(out)
      assert.same({ "NAME", "       streamctl - control live streams on Alibaba Cloud ApsaraVideo Live and" },
        { l[1], l[2] })
      assert.is_nil(out:find("\n%.[A-Z][A-Z]? ") or out:find("\\f", 1, true), "roff left in the text")
      status, out = run { "man", "--roff" }
      assert.equal(0, status)
      assert.matches("^%.\\\" DO NOT MODIFY", out)
      local prefix = HOME .. "/share"
      status, out = run { "man", "--install", "--prefix", prefix }
      assert.equal(0, status)
      assert.equal("the manual page: " .. prefix .. "/man/man1/streamctl.1 (man streamctl)\nbash completion: "
        .. prefix .. "/bash-completion/completions/streamctl (new shells)\n", out)
      local process = require "spec.helpers.process"
      assert.matches("^%.\\\" DO NOT MODIFY", process.read_file(prefix .. "/man/man1/streamctl.1"))
      assert.truthy(process.read_file(prefix .. "/bash-completion/completions/streamctl"):find("complete -F", 1, true))
    end)
end)

describe("the command without the emulator installed", function()
  it("says so for --emulator, and loads without it (the emulator's defaults are the emulator's)", function()
    local names = { "streamctl.cli.emulator", "streamctl.emulator.defaults" }
    local saved = {}
    for i, name in ipairs(names) do saved[i], package.loaded[name] = package.loaded[name], nil end
    -- (as a tree with the command's rock and not the emulator's: its defaults cannot be found)
    package.preload["streamctl.emulator.defaults"] = function() error("module 'streamctl.emulator.defaults' not found") end
    local ok, adapter = pcall(require, "streamctl.cli.emulator")
    package.preload["streamctl.emulator.defaults"] = nil
    for i, name in ipairs(names) do package.loaded[name] = saved[i] end
    assert.is_true(ok, tostring(adapter))
    assert.is_false(adapter.installed)
    assert.same({ nil, "the emulator is not installed (the streamctl-emulator rock, or Debian's streamctl-emulator "
      .. "package)" }, { adapter.ports("/tmp") })
    assert.is_nil(adapter.ALIYUN)
    -- and with it, the emulator's own defaults
    local with = require "streamctl.cli.emulator"
    assert.is_true(with.installed)
    assert.equal(require("streamctl.emulator.defaults").PORTS, with.PORTS)
  end)
end)
