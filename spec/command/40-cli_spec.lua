-- sanitizers: none (the command runs in child processes, as installed: no C of ours runs in this one)
-- The `streamctl` command as installed: the luarocks tree `make build` fills
-- (build/5.4 or build/jit), with only that tree on the module paths, a
-- temporary HOME, and no provider variables in the environment, against the
-- emulator this spec starts on free ports.
local cjson = require "cjson"
local socket = require "socket"
local emu = require "spec.helpers.emulator"
local nginx = require "spec.helpers.nginx"
local process = require "spec.helpers.process"
local aliyun = require "streamctl.aliyun"
local zego = require "streamctl.zego"
local version = require "streamctl.version"

local q = nginx.quote

local leftovers = process.track_tmpnames()
local HOME = nginx.temp_dir()
local streamctl = process.installed { home = HOME }
local COMMAND, ENV, run = streamctl.command, streamctl.env, streamctl.run

local function json_lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = cjson.decode(line) end
  return out
end

local server
local function target(provider)
  return "--endpoint " .. (provider == "zego" and server.zego_tls_url or server.aliyun_tls_url)
    .. " --ca-file " .. q(server.ca_file)
end
local ALI = "--access-key-id LTAIemulatorKey --access-key-secret emulator-secret"
local ZEGO = "--app-id 1234567890 --server-secret 0123456789abcdef0123456789abcdef"
local function ali(args) return "aliyun " .. args .. " " .. target("aliyun") .. " " .. ALI end
local function zg(args) return "zego " .. args .. " " .. target("zego") .. " " .. ZEGO end

local function sent()
  return #(server:log({ limit = 10000 }))
end

describe("streamctl (the command)", function()
  lazy_setup(function() server = emu.start {} end)
  lazy_teardown(function()
    if server then server:stop() end
    os.execute("rm -rf " .. q(HOME))
  end)
  before_each(function() server:reset() end)

  describe("help", function()
    it("prints the version", function()
      local code, out = run("--version")
      assert.equal(0, code)
      local interpreter = rawget(_G, "jit") and rawget(_G, "jit").version or _VERSION
      assert.equal("streamctl " .. version._VERSION .. " (" .. interpreter .. ")\n", out)
    end)

    it("lists the providers and commands, and every operation of each with its flags and an example", function()
      local code, out = run("--help")
      assert.equal(0, code)
      for _, word in ipairs { "aliyun", "zego", "emulator", "completion", "Exit status" } do
        assert.truthy(out:find(word, 1, true), word)
      end
      for provider, mod in pairs { aliyun = aliyun, zego = zego } do
        code, out = run(provider .. " --help")
        assert.equal(0, code)
        for _, m in ipairs(mod.methods()) do
          local name = m.name:gsub("_", "-")
          assert.truthy(out:find(name, 1, true), name)
          local c2, help = run(provider .. " " .. name .. " --help")
          assert.equal(0, c2)
          assert.truthy(help:find("Example:\n   streamctl " .. provider .. " " .. name, 1, true), name)
          assert.truthy(help:find("default: 10000", 1, true), name) -- --timeout's default
          for _, f in ipairs(m.fields) do
            -- (the fields the command keeps for itself, streamctl.cli.parser's SKIP: keep_results, the
            -- library's; check_places, guard, audit: the command's own, always on)
            if f.type ~= "function" and f.name ~= m.list and not require("streamctl.cli.parser").SKIP[f.name] then
              assert.truthy(help:find("--" .. f.name:gsub("_", "-"), 1, true), name .. " lacks --" .. f.name)
            end
          end
        end
      end
    end)

    it("writes a bash completion script", function()
      local code, out = run("completion bash")
      assert.equal(0, code)
      assert.truthy(out:find("complete -F _streamctl", 1, true))
      assert.truthy(out:find("resume-rtc-streams", 1, true))
    end)
  end)

  describe("against the emulator", function()
    it("runs every Aliyun operation, the table for people and JSON lines for programs", function()
      local code, out = run(ali("forbid-live-stream --domain-name push.example.com --app-name live "
        .. "--stream-name s1 --resume-time 2099-01-01T00:00:00Z"))
      assert.equal(0, code, out)
      assert.truthy(out:find("^STREAM%s+RESULT%s+ATTEMPTS%s+REQUEST ID / ERROR\npush.example.com/live/s1%s+ok%s+1%s+%S+"))
      code, out = run(ali("describe-live-streams-block-list --domain-name push.example.com --output json"))
      assert.equal(0, code)
      local r = json_lines(out)[1]
      assert.same({ "push.example.com/live/s1" }, r.result.StreamUrls.StreamUrl)
      code, out = run(ali("resume-live-stream --domain-name push.example.com --app-name live --stream-name s1 --output json"))
      assert.equal(0, code)
      r = json_lines(out)[1]
      assert.same({ "push.example.com/live/s1", true, 1 }, { r.stream, r.ok, r.attempts })
      assert.equal("normal", server:state().aliyun.streams["push.example.com/live/s1"].status)

      code, out = run(ali("forbid-live-streams --domain-name push.example.com --app-name live a b a --output json"))
      assert.equal(0, code)
      local lines = json_lines(out)
      assert.equal(2, #lines) -- the repeat dropped
      code, out = run(ali("resume-live-streams --domain-name push.example.com --app-name live a b"))
      assert.equal(0, code)
      assert.truthy(out:find("2 streams: 2 succeeded, 0 failed, 0 unknown; 2 calls", 1, true), out)
      code = run(ali("describe-live-streams-online-list --domain-name push.example.com"))
      assert.equal(0, code)

      local t0 = os.time()
      code, out = run(ali("create-live-pull-to-push --region cn-shanghai --source-type url "
        .. "--source-urls https://cdn.example.com/a.mp4 --source-urls https://cdn.example.com/b.mp4 "
        .. "--dst-url rtmp://push.example.com/live/relay --start-time " .. t0 .. " --end-time " .. (t0 + 3600)
        .. " --output json"))
      assert.equal(0, code, out)
      local task = json_lines(out)[1].result.TaskId
      assert.truthy(task)
      assert.same({ "https://cdn.example.com/a.mp4", "https://cdn.example.com/b.mp4" },
        server:state().aliyun.tasks[task].TaskInfo.SourceUrls)
      local tail = " --region cn-shanghai --task-id " .. task
      -- (a running task is restarted; a stopped one takes a new EndTime)
      for _, cmd in ipairs { "describe-live-pull-to-push" .. tail, "describe-live-pull-to-push-list --region cn-shanghai",
                             "restart-live-pull-to-push" .. tail, "stop-live-pull-to-push" .. tail,
                             "update-live-pull-to-push" .. tail .. " --end-time " .. (t0 + 7200),
                             "delete-live-pull-to-push" .. tail } do
        code, out = run(ali(cmd .. " --output json"))
        assert.equal(0, code, cmd .. ": " .. out)
        assert.is_true(json_lines(out)[1].ok, cmd)
      end
      code, out = run(ali("call DescribeLiveStreamsBlockList DomainName=push.example.com PageSize=100 --output json"))
      assert.equal(0, code)
      assert.equal("push.example.com", json_lines(out)[1].stream) -- (as describe-live-streams-block-list names it)
      -- for people, one form: what was asked and how it went, then the answer a value a line (issue 50: a
      -- table row whose STREAM held the action, and a JSON blob, before)
      code, out = run(ali("call DescribeLiveStreamsBlockList DomainName=push.example.com PageSize=100"))
      assert.equal(0, code)
      local said = {}
      for l in out:gmatch("[^\n]+") do said[#said + 1] = l end
      assert.matches("^push%.example%.com: ok, 1 attempt, RequestId %x+%-[%x-]+$", said[1])
      assert.same({ "  DomainName: push.example.com", "  PageNum: 1", "  PageSize: 100" },
        { said[2], said[3], said[4] })
      for i = 2, #said do assert.matches("^  [%w.%[%]]+: ", said[i]) end
    end)

    it("--debug writes each request and answer on standard error, every secret and signature redacted", function()
      for _, argv in ipairs {
        ali("resume-live-stream --domain-name push.example.com --app-name live --stream-name dbg --debug"),
        zg("resume-rtc-stream --stream-id dbg --debug"),
      } do
        local code, out, err = run(argv)
        assert.equal(0, code, err)
        local lines = {}
        for l in err:gmatch("[^\n]+") do lines[#lines + 1] = l end
        -- (the run's trace first, once; each request's own traceparent among its headers: spec/command/88)
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ streamctl: debug: trace %x+ %(", lines[1])
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ streamctl: debug: Resume%w+ call, attempt 1: ok in "
          .. "[%d.]+ s %(waited [%d.]+ s for a slot%)$", lines[2])
        assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ > %u+ https://127%.0%.0%.1:%d+/%?", lines[3])
        assert.truthy(err:find("< 200", 1, true), err)
        assert.truthy(err:find('< {"', 1, true), err)
        assert.truthy(err:find("<redacted>", 1, true), err)
        -- the signature and the secret never
        assert.is_nil(err:find("emulator-secret", 1, true))
        assert.is_nil(err:find("0123456789abcdef0123456789abcdef", 1, true))
        assert.is_nil(err:find("Signature=%x%x%x%x"), err)
        assert.truthy(out:find("ok", 1, true), out) -- (the report as ever, on standard output)
      end
    end)

    it("the README's Alibaba Cloud quick start runs again (issue 50: CodeConfigAlreadyExists the second time)",
      function()
        local root = os.getenv("STREAMCTL_ROOT") or "."
        local block = assert(nginx.read_file(root .. "/README.md"):match("### Alibaba Cloud\n\n```lua\n(.-)```"))
        local path = HOME .. "/quick-start.lua"
        nginx.write_file(path, block)
        local lua = rawget(_G, "jit") and "luajit" or "lua5.4"
        local env = ENV .. " STREAMCTL_ALIYUN_ENDPOINT=" .. q(server.aliyun_tls_url) .. " STREAMCTL_CA_FILE="
          .. q(server.ca_file) .. " ALIBABA_CLOUD_ACCESS_KEY_ID=LTAIemulatorKey "
          .. "ALIBABA_CLOUD_ACCESS_KEY_SECRET=emulator-secret"
        for i = 1, 2 do
          local out = HOME .. "/quick-start.out"
          local status = process.exit_status(os.execute(env .. " " .. lua .. " " .. q(path) .. " >" .. q(out)
            .. " 2>&1"))
          assert.equal(0, status, "run " .. i .. ": " .. tostring(nginx.read_file(out)))
        end
      end)

    it("runs every ZEGO operation", function()
      local code, out = run(zg("forbid-rtc-streams r1 r2 r3 --output json"))
      assert.equal(0, code, out)
      assert.equal(3, #json_lines(out))
      for _, cmd in ipairs { "resume-rtc-streams r1 r2", "forbid-rtc-stream --stream-id r1",
                             "resume-rtc-stream --stream-id r1", "describe-rtc-stream-state --stream-id r1",
                             "forbid-cdn-live-stream --stream-id c1", "resume-cdn-live-stream --stream-id c1",
                             "call DescribeRTCStreamState StreamId=r1" } do
        code, out = run(zg(cmd .. " --output json"))
        assert.equal(0, code, cmd .. ": " .. out)
        assert.is_true(json_lines(out)[1].ok, cmd)
      end
      local st = server:state().zego.streams["1234567890"]
      assert.same({ "normal", "forbidden", "normal" }, { st.r1.rtc, st.r3.rtc, st.c1.cdn })
    end)

    it("takes 2,000 IDs on standard input (--from -), blank lines and comments skipped", function()
      local ids = { "# today's list", "" }
      for i = 1, 2000 do ids[#ids + 1] = "  id-" .. i .. "  " end
      local code, out = run(zg("resume-rtc-streams --from - --yes --output json"), nil,
        table.concat(ids, "\n") .. "\n")
      assert.equal(0, code)
      local lines = json_lines(out)
      assert.equal(2000, #lines)
      local seen = {}
      for _, l in ipairs(lines) do
        assert.is_true(l.ok)
        seen[l.stream] = true
      end
      assert.is_true(seen["id-1"] and seen["id-2000"])
      assert.equal(100, #server:log({ action = "ResumeRTCStreams", limit = 1000 }))
    end)

    it("takes --rate down to 0.0001 (the first request goes at once)", function()
      local code, out, err = run(ali("resume-live-streams --domain-name d.example --app-name live --rate 0.0001 s1"))
      assert.equal(0, code, err)
      assert.truthy(out:find("1 streams: 1 succeeded", 1, true), out)
    end)

    it("skips a UTF-8 byte order mark at the top of --from (a file, standard input), refuses one inside", function()
      local function names(streams, prefix)
        local t = {}
        for k in pairs(streams or {}) do t[#t + 1] = prefix and k:gsub("^" .. prefix:gsub("%p", "%%%0"), "") or k end
        table.sort(t)
        return t
      end
      local list = HOME .. "/bom.txt"
      nginx.write_file(list, "\239\187\191match-1\r\nmatch-2\r\n") -- (Notepad's way)
      local code, out, err = run(ali("forbid-live-streams --domain-name d.example --app-name live --from " .. q(list)))
      assert.equal(0, code, err)
      assert.truthy(out:find("\nmatch-1 ", 1, true), out)
      assert.same({ "match-1", "match-2" }, names(server:state().aliyun.streams, "d.example/live/"))
      server:reset()
      code, out, err = run(zg("forbid-rtc-streams --from - --output json"), nil, "\239\187\191room-1\nroom-2\n")
      assert.equal(0, code, err .. out)
      assert.same({ "room-1", "room-2" }, names(server:state().zego.streams["1234567890"]))
      server:reset()
      nginx.write_file(list, "match-1\n\239\187\191match-2\n")
      code, out, err = run(ali("forbid-live-streams --domain-name d.example --app-name live --from " .. q(list)))
      assert.same({ 2, "", "streamctl: --from: " .. list .. ":2: a byte order mark (U+FEFF) inside the list; only "
        .. "the first line may start with one\n" }, { code, out, err })
      code, out, err = run(zg("forbid-rtc-streams --from -"), nil, "room-1\n\239\187\191room-2\n")
      assert.same({ 2, "", "streamctl: --from: standard input:2: a byte order mark (U+FEFF) inside the list; only "
        .. "the first line may start with one\n" }, { code, out, err })
      os.remove(list)
      assert.equal(0, sent())
    end)

    it("exits 1 and names each stream that failed", function()
      -- (throttled until the run's deadline: a throttle is sent again for as long as the run lasts)
      server:faults { kind = "throttle", action = "ResumeLiveStream", count = 100000, retry_after_ms = 10 }
      local code, out = run(ali("resume-live-streams --domain-name d.example --app-name live one two --output json "
        .. "--deadline 1"))
      assert.equal(1, code)
      local lines = json_lines(out)
      assert.equal(2, #lines)
      for _, l in ipairs(lines) do
        assert.same({ false, "Throttling.User" }, { l.ok, l.code })
        assert.is_true(l.attempts >= 1)
      end
      server:clear_faults()
      server:faults { kind = "throttle", action = "ResumeLiveStream", count = 100000, retry_after_ms = 10 }
      code, out = run(ali("resume-live-streams --domain-name d.example --app-name live one two --deadline 1"))
      assert.equal(1, code)
      assert.truthy(out:find("\none%s+FAILED%s+%d+%s+Throttling.User: "), out)
      assert.truthy(out:find("2 streams: 0 succeeded, 2 failed, 0 unknown; %d+ calls, [%d.]+ s; %d+ throttled"), out)
      server:clear_faults()
      code, out = run(ali("stop-live-pull-to-push --region cn-shanghai --task-id no-such-task"))
      assert.equal(1, code)
      assert.truthy(out:find("no%-such%-task%s+FAILED%s+1%s+CodeTaskNotExist"), out)
    end)

    it("exits 2 for a bad flag or value, naming the flag and the rule, and sends nothing", function()
      local cases = {
        { ali("resume-live-stream --domain-name d --app-name a"), "'--stream-name' is required" },
        { ali("resume-live-stream --domain-name d --app-name a --stream-name s --bogus"), "unknown option '--bogus'" },
        { ali("resume-live-stream --domain-name d --app-name a --stream-name s --timeout 0"),
          "--timeout must be an integer >= 1 in decimal digits (at most 9007199254740991) (got '0')" },
        { ali("resume-live-stream --domain-name d --app-name a --stream-name s --concurrency x"),
          "--concurrency must be an integer >= 1 in decimal digits (at most 9007199254740991) "
          .. "(got 'x')" },
        { ali("resume-live-stream --domain-name d --app-name a --stream-name s --proxy ftp://proxy:21"),
          "streamctl: '--proxy' must look like http://host:port (schemes: http, https, socks4, socks4a, socks5, "
          .. "socks5h), or be \"env\" (the environment's https_proxy and no_proxy)\n" },
        { ali("resume-live-stream --domain-name d --app-name a --stream-name s --rate=-1"),
          "--rate must be a number >= 0.0001 in decimal digits (a decimal point allowed) (got '-1')" },
        -- (the lowest rate pacing keeps: below it, the slots' arithmetic overflows and sends unpaced)
        { ali("resume-live-stream --domain-name d --app-name a --stream-name s --rate 0.00001"),
          "streamctl: --rate must be a number >= 0.0001 in decimal digits (a decimal point allowed) "
          .. "(got '0.00001')\n" },
        { ali("resume-live-streams --domain-name d --app-name a --deadline 2147484 s1"),
          "streamctl: --deadline must be an integer from 1 to 2147483 in decimal digits (got '2147484')\n" },
        { ali("resume-live-streams --domain-name d --app-name a --deadline 1.5 s1"),
          "streamctl: --deadline must be an integer >= 1 in decimal digits (at most 9007199254740991) (got '1.5')\n" },
        { ali("resume-live-streams --domain-name d --app-name a --cap 0 s1"),
          "streamctl: --cap must be a number >= 0.0001 in decimal digits (a decimal point allowed) (got '0')\n" },
        { ali("reconcile --from /dev/null --cap 10"), "streamctl: --cap goes with a command that sends one action\n" },
        { ali("resume-live-streams --domain-name d --app-name a --rate 1e-310 s1 s2"),
          "streamctl: --rate must be a number >= 0.0001 in decimal digits (a decimal point allowed) "
          .. "(got '1e-310')\n" },
        { ali("resume-live-streams --domain-name d --app-name a --from " .. q(HOME)),
          "streamctl: --from: cannot read " .. HOME .. ": Is a directory\n" },
        { ali("resume-live-streams --domain-name d --app-name a --from /proc/self/mem"),
          "streamctl: --from: cannot read /proc/self/mem: Input/output error\n" },
        { ali("resume-live-stream --domain-name d --app-name a --stream-name 'a\tb' --output yaml"),
          "argument for option '--output' must be one of 'table', 'json'" },
        { ali("forbid-live-stream --domain-name d --app-name a --stream-name s --resume-time tomorrow"),
          "--resume-time must be a time (YYYY-MM-DDThh:mm:ssZ or Unix seconds) or a duration: [+]N followed by d, h, m "
            .. "or s, largest unit first, each once, no spaces, above zero (e.g. +2h, 90m, 1h30m, 45s, 2d) (got "
            .. "'tomorrow')" },
        { ali("create-live-pull-to-push --region mars --source-type url --source-urls u --dst-url rtmp://x/y/z "
          .. "--start-time 1 --end-time 2"), "argument for option '--region' must be one of" },
        { ali("describe-live-pull-to-push-list --region cn-shanghai --page-size 500"),
          "'--page-size' must be at most 100" },
        { ali("resume-live-streams --domain-name d --app-name a"), "the stream list (arguments or --from)" },
        { ali("resume-live-streams --domain-name d --app-name a --from /nonexistent/ids.txt"),
          "--from: cannot read /nonexistent/ids.txt" },
        { ali("call NoSuchAction"), "unknown action 'NoSuchAction'" },
        { ali("call DescribeLiveStreamsBlockList DomainName"), "parameter 'DomainName' must be Key=Value" },
        { zg("resume-rtc-stream"), "'--stream-id' is required" },
        { "zego resume-rtc-stream --stream-id s " .. target("zego"), "no ZEGO credentials: set ZEGO_APP_ID and "
          .. "ZEGO_SERVER_SECRET, or add [zego] to " .. HOME .. "/.config/streamctl/config" },
        { "aliyun resume-live-stream --domain-name d --app-name a --stream-name s --access-key-id X",
          "--access-key-id and --access-key-secret go together" },
        { "aliyun frobnicate", "unknown command 'frobnicate'" },
      }
      for _, case in ipairs(cases) do
        local code, out, err = run(case[1])
        assert.equal(2, code, case[1] .. "\n" .. err)
        assert.equal("", out, case[1])
        if case[2]:find("^streamctl: ") then -- the whole message
          assert.equal(case[2], err)
        else
          assert.truthy(err:find(case[2], 1, true), "'" .. err .. "' lacks '" .. case[2] .. "'")
        end
      end
      assert.equal(0, sent())
    end)

    it("exits 130 on Ctrl-C after reporting every stream, the ones not sent marked", function()
      local names = {}
      for i = 1, 150 do names[i] = "s" .. i end
      local list = HOME .. "/names.txt"
      nginx.write_file(list, table.concat(names, "\n"))
      local dir = nginx.temp_dir()
      finally(function() os.execute("rm -rf " .. q(dir)) end)
      local out, pidfile, codefile = dir .. "/out", dir .. "/pid", dir .. "/code"
      local cmd = ENV .. " " .. COMMAND .. " "
        .. ali("resume-live-streams --domain-name d.example --app-name live --output json --yes --from " .. q(list))
      -- In the background: the command's own pid in pidfile, its exit status in codefile.
      os.execute("(sh -c " .. q("echo $$ >" .. q(pidfile) .. "; exec " .. cmd) .. " >" .. q(out) .. " 2>&1; echo $? >"
        .. q(codefile) .. ") &")
      local deadline = socket.gettime() + 10
      -- (until the pid is whole: the shell creates the file before it writes it)
      while not (nginx.read_file(pidfile) or ""):find("\n") and socket.gettime() < deadline do socket.sleep(0.05) end
      local pid = assert(tonumber(nginx.read_file(pidfile)), "the command did not start")
      -- (interrupted once 20 of the 150 have arrived, about 0.7 s at 28.5 per second, however busy the
      -- machine: the rest are still to send)
      assert.truthy(require("spec.helpers.checks").wait_until(function()
        return #server:log({ action = "ResumeLiveStream", limit = 1000 }) >= 20 end, 60), "nothing arrived")
      os.execute("kill -INT " .. pid)
      deadline = socket.gettime() + 30
      while not (nginx.read_file(codefile) or ""):find("\n") and socket.gettime() < deadline do socket.sleep(0.05) end
      local status = "exit=" .. (nginx.read_file(codefile) or "(none)")
      local lines = {}
      local text = nginx.read_file(out)
      for line in text:gmatch("[^\n]+") do
        if line:sub(1, 1) == "{" then lines[#lines + 1] = cjson.decode(line) end
      end
      assert.truthy(status:find("exit=130", 1, true), status .. text)
      assert.equal(150, #lines)
      local ok, not_sent = 0, 0
      for _, l in ipairs(lines) do
        if l.ok then ok = ok + 1 elseif l.code == "Interrupted" then not_sent = not_sent + 1 end
      end
      assert.equal(150, ok + not_sent)
      assert.is_true(ok > 10 and not_sent > 10, ok .. " sent, " .. not_sent .. " not sent")
      assert.equal(ok, #server:log({ action = "ResumeLiveStream", limit = 1000 }))
      assert.truthy(text:find("streamctl: interrupted (signal 2)", 1, true))
    end)
  end)

  describe("emulator", function()
    it("starts, reports and stops the emulator (streamctl-emulator)", function()
      local dir = HOME .. "/emu"
      local ports = emu.free_ports(5)
      local flags = string.format("--dir %s --aliyun-port %d --zego-port %d --aliyun-tls-port %d --zego-tls-port %d "
        .. "--imds-port %d", q(dir), ports[1], ports[2], ports[3], ports[4], ports[5])
      local code, out, err = run("emulator start " .. flags)
      assert.equal(0, code, err)
      assert.truthy(out:find("https://127.0.0.1:" .. ports[3], 1, true), out)
      assert.truthy(out:find("IMDS    http://127.0.0.1:" .. ports[5] .. "\n", 1, true), out)
      code, out = run("emulator status --dir " .. q(dir))
      assert.equal(0, code, out)
      -- the command against it, by --emulator and its directory
      code, out = run("zego resume-rtc-stream --stream-id s --emulator --emulator-dir " .. q(dir) .. " --endpoint "
        .. "https://127.0.0.1:" .. ports[4])
      assert.equal(0, code, out)
      code = run("emulator stop --dir " .. q(dir))
      assert.equal(0, code)
      code = run("emulator status --dir " .. q(dir))
      assert.equal(3, code)
      -- stopped: --emulator says so in one line, and sends nothing (issue 50)
      code, out, err = run("zego forbid-rtc-streams a b --emulator --emulator-dir " .. q(dir))
      assert.equal(2, code)
      assert.equal("", out)
      assert.equal("streamctl: --emulator: no emulator runs in " .. dir .. " (it was stopped); start it with: "
        .. "streamctl emulator start --dir " .. dir .. "\n", err)
    end)

    it("works without the emulator rock, and says how to get it when asked to start one", function()
      -- the streamctl and streamctl-cli rocks alone, installed as README
      -- "Install" does for a tree of its own (luarocks make: about 4 s of C)
      local root = os.getenv("STREAMCTL_ROOT") or "."
      local tree = HOME .. "/alone"
      local v = rawget(_G, "jit") and "5.1" or "5.4"
      -- (from a copy: luarocks builds the objects beside the sources, where
      -- this spec under the other interpreter, or `make build`, builds too)
      local src = HOME .. "/src"
      assert.is_true(process.run("mkdir -p " .. q(src) .. " && cd " .. q(root) .. " && cp -r src csrc rockspecs bin docs "
        .. q(src .. "/")))
      for _, rock in ipairs { "streamctl", "streamctl-cli" } do
        assert.is_true(process.run("cd " .. q(src) .. " && LUAROCKS_CONFIG=rockspecs/luarocks-config.lua luarocks "
          .. "--lua-version=" .. v .. " --tree " .. q(tree) .. " make rockspecs/" .. rock .. "-scm-1.rockspec "
          .. ">/dev/null 2>&1"), rock)
      end
      assert.is_nil(process.read_file(tree .. "/bin/streamctl-emulator"))
      local alone = "env -i PATH=/usr/bin:/bin HOME=" .. q(HOME) .. " " .. q(tree .. "/bin/streamctl")
      local function alone_run(args)
        local p = assert(io.popen(alone .. " " .. args .. " 2>&1; echo \"exit $?\""))
        local out = p:read("*a")
        p:close()
        return out
      end
      local interpreter = rawget(_G, "jit") and rawget(_G, "jit").version or _VERSION
      assert.equal("streamctl " .. version._VERSION .. " (" .. interpreter .. ")\nexit 0\n", alone_run("--version"))
      local out = alone_run("zego resume-rtc-stream --stream-id s --dry-run " .. ZEGO .. " --endpoint "
        .. server.zego_tls_url)
      assert.truthy(out:find("?Action=ResumeRTCStream&", 1, true), out)
      assert.truthy(out:find("exit 0\n", 1, true), out)
      assert.equal("streamctl: the emulator is not installed: it is the streamctl-emulator rock. "
        .. "From a clone of streamctl:\n"
        .. "  apt-get install nginx libnginx-mod-http-lua lua-resty-core lua-nginx-string lua-cjson\n"
        .. "  luarocks --lua-version=5.4 make --deps-mode=none rockspecs/streamctl-emulator-scm-1.rockspec\n"
        .. "(docs/emulator.md)\nexit 1\n", alone_run("emulator start --dir " .. q(HOME .. "/none")))
      os.execute("rm -rf " .. q(tree))
    end)
  end)

  describe("credentials", function()
    local function write(path, text, mode)
      os.execute("mkdir -p " .. q(path:match("^(.*)/")))
      nginx.write_file(path, text)
      os.execute("chmod " .. (mode or "600") .. " " .. q(path))
    end
    local function clean() os.execute("rm -rf " .. q(HOME .. "/.alibabacloud") .. " " .. q(HOME .. "/.aliyun") .. " "
      .. q(HOME .. "/.config")) end
    before_each(clean)
    after_each(clean)

    -- The AccessKeyId a dry run would sign with (V3's Credential=...).
    local function ali_key(extra, flags)
      local code, out, err = run("aliyun resume-live-stream --domain-name d --app-name a --stream-name s --dry-run "
        .. (flags or ""), extra)
      if code ~= 0 then return nil, err end
      return out:match("Credential=([^,]+)"), err, out
    end

    it("come from flags, then the environment, then ~/.aliyun/config.json, then ~/.alibabacloud/credentials", function()
      write(HOME .. "/.aliyun/config.json", cjson.encode { current = "default", profiles = {
        { name = "default", mode = "AK", access_key_id = "KEY_CLI", access_key_secret = "s" },
        { name = "sts", mode = "StsToken", access_key_id = "STS.KEY", access_key_secret = "s", sts_token = "TOKEN-1" },
      } })
      assert.equal("KEY_CLI", (ali_key()))
      local _, _, out = ali_key(nil, "--profile sts --signature-version v1")
      assert.truthy(out:find("AccessKeyId=STS.KEY", 1, true))
      assert.truthy(out:find("SecurityToken=<redacted>", 1, true))
      assert.is_nil(out:find("TOKEN-1", 1, true))
      write(HOME .. "/.alibabacloud/credentials", "# mine\n[default]\ntype = access_key\naccess_key_id = KEY_FILE\n"
        .. "access_key_secret = s\n\n[prod]\naccess_key_id = KEY_PROD\naccess_key_secret = s\n")
      -- the official chain's order: aliyun-cli's file first, unless it is turned off
      assert.equal("KEY_CLI", (ali_key()))
      assert.equal("KEY_FILE", (ali_key("ALIBABA_CLOUD_CLI_PROFILE_DISABLED=TRUE")))
      assert.equal("KEY_PROD", (ali_key(nil, "--profile prod"))) -- (config.json has no profile 'prod')
      assert.equal("KEY_PROD", (ali_key("ALIBABA_CLOUD_PROFILE=prod")))
      local env = "ALIBABA_CLOUD_ACCESS_KEY_ID=KEY_ENV ALIBABA_CLOUD_ACCESS_KEY_SECRET=s"
      assert.equal("KEY_ENV", (ali_key(env)))
      assert.equal("KEY_FLAG", (ali_key(env, "--access-key-id KEY_FLAG --access-key-secret s")))
      assert.equal("LTAIemulatorKey", (ali_key(env, "--emulator --emulator-dir " .. q(server.dir))))
    end)

    it("warn about a profile file others can read, and name the file and line of a malformed one", function()
      write(HOME .. "/.alibabacloud/credentials", "[default]\naccess_key_id = K\naccess_key_secret = s\n", "644")
      local key, err = ali_key()
      assert.equal("K", key)
      local file = HOME .. "/.alibabacloud/credentials"
      assert.truthy(err:find("streamctl: warning: " .. file .. " can be read by other users (rw-r--r--); run: "
        .. "chmod 600 " .. file, 1, true), err)
      write(file, "[default]\naccess_key_id = K\nthis line is wrong\n")
      key, err = ali_key()
      assert.is_nil(key)
      assert.equal("streamctl: " .. file .. ":3: expected 'key = value' or '[section]'\n", err)
      write(file, "[default]\ntype = rsa_key_pair\n")
      key, err = ali_key()
      assert.is_nil(key)
      assert.equal("streamctl: " .. file .. ":1: profile [default] has type 'rsa_key_pair', which streamctl does not "
        .. "serve (it serves access_key, ecs_ram_role, ram_role_arn, sts)\n", err)
      os.remove(file)
      write(HOME .. "/.aliyun/config.json", '{"profiles": [\n  {"name": "default",\n  "mode": AK}\n]}')
      key, err = ali_key()
      assert.is_nil(key)
      assert.truthy(err:find(HOME .. "/.aliyun/config.json:3: not valid JSON", 1, true), err)
    end)

    it("for ZEGO: flags, then the environment, then ~/.config/streamctl/config and its [defaults]", function()
      write(HOME .. "/.config/streamctl/config", "[zego]\napp_id = 111\nserver_secret = abc\n[zego.staging]\n"
        .. "app_id = 222\nserver_secret = def\n[defaults]\noutput = json\n")
      local function app(extra, flags)
        local code, out, err = run("zego resume-rtc-stream --stream-id s --dry-run " .. (flags or ""), extra)
        assert.equal(0, code, err)
        return out:match("AppId=(%d+)"), out
      end
      local id, out = app()
      assert.equal("111", id)
      assert.equal("{", out:sub(1, 1)) -- [defaults] output = json
      assert.equal("222", (app(nil, "--profile staging")))
      assert.equal("333", (app("ZEGO_APP_ID=333 ZEGO_SERVER_SECRET=x")))
      assert.equal("444", (app("ZEGO_APP_ID=333 ZEGO_SERVER_SECRET=x", "--app-id 444 --server-secret y")))
    end)
  end)

  describe("profile files (one INI dialect) and a missing HOME", function()
    local function write(path, text)
      os.execute("mkdir -p " .. q(path:match("^(.*)/")))
      nginx.write_file(path, text)
      os.execute("chmod 600 " .. q(path))
    end
    local function clean() os.execute("rm -rf " .. q(HOME .. "/.alibabacloud") .. " " .. q(HOME .. "/.config")) end
    before_each(clean)
    after_each(clean)
    local CONFIG = HOME .. "/.config/streamctl/config"
    local CREDENTIALS = HOME .. "/.alibabacloud/credentials"
    local SECRET = "0123456789abcdef0123456789abcdef" -- (the emulator's ZEGO account)

    it("read docs/cli.md's own examples, comments after a [section] included, and call with them", function()
      write(CONFIG, "\239\187\191[zego]                 ; the default profile\napp_id = 1234567890\n"
        .. "server_secret = " .. SECRET .. "\n[zego.staging]         ; --profile staging\napp_id = 1234567891\n"
        .. "server_secret = '...'\n[defaults]             ; the command line's defaults\noutput = json\n"
        .. "concurrency = 16\ntimeout_ms = 5000\n")
      local code, out, err = run("zego resume-rtc-stream --stream-id r1 " .. target("zego"))
      assert.equal(0, code, err .. out)
      assert.truthy(out:find('^{"stream":"r1","ok":true'), out) -- [defaults] output = json
      write(CREDENTIALS, "[default]   # mine\naccess_key_id = LTAIemulatorKey   \n"
        .. "access_key_secret = \"emulator-secret\" ; quoted, then a comment\n")
      code, out, err = run("aliyun resume-live-stream --domain-name d --app-name a --stream-name s1 "
        .. target("aliyun"))
      assert.equal(0, code, err .. out)
    end)

    it("refuse a comment after a value, and a key given twice, naming file and line, never the value", function()
      local cases = {
        { CONFIG, "[zego]\napp_id = 1234567890\nserver_secret = " .. SECRET .. " ; prod\n",
          CONFIG .. ":3: the value of server_secret has a blank followed by ; or #, which streamctl neither keeps "
          .. "nor cuts as a comment: put the comment on a line of its own, or the value in quotes" },
        { CONFIG, "[zego]\napp_id = 1234567890\nserver_secret = " .. SECRET .. "\t#prod\n",
          CONFIG .. ":3: the value of server_secret has a blank followed by ; or #" },
        { CONFIG, "[zego]\nserver_secret = " .. SECRET .. "\napp_id = 1234567890\n\nSERVER_SECRET = " .. SECRET
          .. "0\n", CONFIG .. ":5: server_secret is set twice in [zego] (first at line 2)" },
        { CREDENTIALS, "[default]\naccess_key_id = LTAIemulatorKey\naccess_key_secret = " .. SECRET .. " # old\n",
          CREDENTIALS .. ":3: the value of access_key_secret has a blank followed by ; or #" },
        { CREDENTIALS, "[default]\naccess_key_id = A\naccess_key_id = B\naccess_key_secret = " .. SECRET .. "\n",
          CREDENTIALS .. ":3: access_key_id is set twice in [default] (first at line 2)" },
        { CREDENTIALS, "[default] access_key_id = A\n",
          CREDENTIALS .. ":1: expected '[section]', optionally followed by a ; or # comment" },
      }
      for _, case in ipairs(cases) do
        clean()
        write(case[1], case[2])
        local code, out, err = run(case[1] == CONFIG and ("zego resume-rtc-stream --stream-id r1 " .. target("zego"))
          or ("aliyun resume-live-stream --domain-name d --app-name a --stream-name s1 " .. target("aliyun")))
        assert.equal(2, code, err)
        assert.equal("", out)
        assert.equal("streamctl: " .. case[3], err:sub(1, #case[3] + 11))
        assert.is_nil(err:find(SECRET, 1, true), err)
      end
      assert.equal(0, sent())
    end)

    it("without HOME (cron's env -i), or with an empty one, read no file under it, and say so", function()
      local homeless = process.installed {}
      write(HOME .. "/etc/credentials", "[default]\naccess_key_id = LTAIemulatorKey\n"
        .. "access_key_secret = emulator-secret\n")
      write(HOME .. "/xdg/streamctl/config", "[zego]\napp_id = 1234567890\nserver_secret = " .. SECRET .. "\n")
      -- (a resume decides: without HOME it has no decision file either, said first)
      local nofile = "streamctl: warning: no decision file (set STREAMCTL_DECISION_FILE, XDG_STATE_HOME or HOME, or "
        .. "give --decision-file): this run's decisions are its own, and another run's later one cannot supersede them\n"
      for _, extra in ipairs { "", "HOME=" } do
        local code, out, err = homeless.run("zego resume-rtc-stream --stream-id r1 " .. target("zego"), extra)
        assert.same({ 2, "", nofile .. "streamctl: no ZEGO credentials: set ZEGO_APP_ID and ZEGO_SERVER_SECRET (HOME "
          .. "is not set: profile files under it were not read)\n" }, { code, out, err })
        code, out, err = homeless.run("aliyun resume-live-stream --domain-name d --app-name a --stream-name s1 "
          .. target("aliyun"), extra)
        assert.same({ 2, "", nofile .. "streamctl: no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and "
          .. "ALIBABA_CLOUD_ACCESS_KEY_SECRET (HOME is not set: profile files under it were not read)\n" },
          { code, out, err })
        -- a file named by a variable is read all the same
        code, out, err = homeless.run("aliyun resume-live-stream --domain-name d --app-name a --stream-name s1 "
          .. target("aliyun"), extra .. " ALIBABA_CLOUD_CREDENTIALS_FILE=" .. q(HOME .. "/etc/credentials"))
        assert.equal(0, code, err .. out)
        code, out, err = homeless.run("aliyun resume-live-stream --domain-name d --app-name a --stream-name s1 "
          .. target("aliyun") .. " --profile prod", extra .. " ALIBABA_CLOUD_CREDENTIALS_FILE="
          .. q(HOME .. "/etc/credentials"))
        -- (a profile named and found nowhere: an error naming it, never another source)
        assert.same({ 2, "", nofile .. "streamctl: profile 'prod' (named by the profile option, --profile) is not in " .. HOME
          .. "/etc/credentials (named by ALIBABA_CLOUD_CREDENTIALS_FILE) (HOME is not set: profile files under it "
          .. "were not read)\n" }, { code, out, err })
        code, out, err = homeless.run("zego resume-rtc-stream --stream-id r1 " .. target("zego"), extra
          .. " XDG_CONFIG_HOME=" .. q(HOME .. "/xdg"))
        assert.equal(0, code, err .. out)
        -- (a relative XDG_CONFIG_HOME is ignored, as the XDG spec says)
        code, out, err = homeless.run("zego resume-rtc-stream --stream-id r1 " .. target("zego"), extra
          .. " XDG_CONFIG_HOME=xdg")
        assert.equal(2, code, err .. out)
      end
      os.execute("rm -rf " .. q(HOME .. "/etc") .. " " .. q(HOME .. "/xdg"))
    end)
  end)

  describe("a dry run", function()
    it("prints every request that would be sent, with no secret, signature or token, and sends nothing", function()
      local secret, token, zsecret = "SECRET-abc123", "TOKEN-xyz789", "ZEGOSECRET-0123456789abcdef0123"
      for _, args in ipairs {
        "aliyun forbid-live-streams --domain-name d --app-name a s1 s2 --access-key-id AK --access-key-secret "
          .. secret .. " --security-token " .. token,
        "aliyun forbid-live-streams --domain-name d --app-name a s1 s2 --signature-version v1 --access-key-id AK "
          .. "--access-key-secret " .. secret .. " --security-token " .. token .. " --output json",
        "zego forbid-rtc-streams s1 s2 --app-id 1 --server-secret " .. zsecret,
      } do
        local code, out, err = run(args .. " --dry-run " .. target(args:match("^%a+")))
        assert.equal(0, code, err)
        for _, s in ipairs { secret, token, zsecret } do assert.is_nil(out:find(s, 1, true), s) end
        assert.is_nil(out:find("Signature=%x"))
        assert.is_nil(out:find("Signature=[%w%%]+&"))
        assert.truthy(out:find("Signature=<redacted>", 1, true))
      end
      local code, out = run(ali("forbid-live-streams --domain-name d --app-name a s1 s2 --dry-run --output json"))
      assert.equal(0, code)
      local reqs = json_lines(out)
      assert.equal(2, #reqs)
      assert.equal("POST", reqs[1].method)
      assert.equal(0, sent())
    end)
  end)

  describe("secrets", function()
    it("never show in its output, even from a server that echoes every request back", function()
      local child, port = process.httpserver(100, "/echo") -- "/" answers the request it got, as JSON
      local secret, token, zsecret = "SECRET-abc123", "TOKEN-xyz789", "ZEGOSECRET-0123456789abcdef0123"
      local ok, err = pcall(function()
        for _, args in ipairs {
          "aliyun describe-live-streams-block-list --domain-name d --access-key-id AK --access-key-secret " .. secret
            .. " --security-token " .. token,
          "aliyun describe-live-streams-block-list --domain-name d --signature-version v1 --access-key-id AK "
            .. "--access-key-secret " .. secret .. " --security-token " .. token .. " --output json",
          "zego describe-rtc-stream-state --stream-id s --app-id 1 --server-secret " .. zsecret,
          "zego forbid-rtc-streams a b --app-id 1 --server-secret " .. zsecret .. " --output json",
        } do
          local _, out, e = run(args .. " --endpoint http://127.0.0.1:" .. port)
          local text = out .. e
          -- it was answered: the echo as a result (Aliyun), or an answer that is not ZEGO's
          assert.truthy(text:find("echo", 1, true) or text:find("InvalidResponse", 1, true), text)
          for _, s in ipairs { secret, token, zsecret } do assert.is_nil(text:find(s, 1, true), s .. " in " .. text) end
          assert.is_nil(text:find("Signature=%x"), text)
          assert.is_nil(text:find("Signature=[%w%%]+&"), text)
        end
      end)
      process.stop(child)
      assert(ok, err)
    end)
  end)

  describe("progress", function()
    it("is drawn on a terminal's standard error, and not when it is piped", function()
      local cmd = COMMAND .. " " .. zg("resume-rtc-streams a b c d e f g h i j k l m n o p q r s t u v w x y z "
        .. "--concurrency 1") .. " >/dev/null"
      local pipe = io.popen(ENV .. " script -qec " .. q(cmd) .. " /dev/null </dev/null", "r")
      local tty = pipe:read("*a")
      pipe:close()
      assert.truthy(tty:find("[########################] 26/26", 1, true), tty)
      assert.truthy(tty:find("failed 0", 1, true))
      local _, _, err = run(zg("resume-rtc-streams a b c"))
      assert.equal("", err)
      pipe = io.popen(ENV .. " script -qec " .. q(cmd .. " --no-progress") .. " /dev/null </dev/null", "r")
      tty = pipe:read("*a")
      pipe:close()
      assert.is_nil(tty:find("[#", 1, true), tty)
    end)
  end)
end)

describe("streamctl's spec", function()
  it("leaves no temporary file or directory behind", function()
    assert.same({}, leftovers())
  end)
end)
