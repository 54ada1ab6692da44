-- tier: unit
-- Issue 66's fault matrix for the command's input, one `it` a row:
--   * every flag comes once, or by a written rule: each option of every
--     (sub)command, enumerated from the parser itself (a new flag is a new
--     row), given twice is a usage error naming it; one that takes many
--     says 'repeat' in its help and keeps every value; the issue's own rows
--     (`reconcile --from A --from B`, `--domain-name`, `--stream-name`,
--     `--max-forbid` twice);
--   * `call`'s Key=Value given twice: an array only where the action's field
--     takes a list, or written Key[]; otherwise refused naming the key;
--   * `call` is the named command: a named action's parameters checked by
--     its method's rules (a ResumeTime past, ZEGO's 30 days, a parameter it
--     requires, a RegionId's shape) before the intent is written;
--   * the cosmetic rows: `man --install --prefix ""`, a flag named as it is
--     (reconcile's '--domains', whoami's STS options), a region ID's shape
--     (ALIBABA_CLOUD_REGION_ID, --region-id).
-- Nothing here reaches a server: a run that would send goes to 127.0.0.1:9,
-- where nothing listens, and "nothing sent" is its exit 2 and no intent.
-- spec/command/78-once-sent runs the rows that need an answer.
local cjson = require "cjson"
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"
local matrix = require "spec.helpers.matrix"
local cli = require "streamctl.cli"
local cli_output = require "streamctl.cli.output"

local HOME = process.temp_dir()
local DOWN = "http://127.0.0.1:9"
local ALI = { "--endpoint", DOWN, "--access-key-id", "LTAIexample", "--access-key-secret", "example-secret" }
local ZEGO = { "--endpoint", DOWN, "--app-id", "1234567890", "--server-secret", "0123456789abcdef0123456789abcdef" }

local argv_of = checks.argv_of

local function run(argv, env)
  return checks.run_cli(argv, { home = HOME, env = env })
end

local fresh = 0
local function log_path()
  fresh = fresh + 1
  return HOME .. "/audit-" .. fresh .. ".jsonl"
end

local function records(path)
  local out = {}
  for l in (process.read_file(path) or ""):gmatch("[^\n]+") do out[#out + 1] = cjson.decode(l) end
  return out
end

local function twice(name)
  return "streamctl: option '" .. name .. "' given twice: it is taken once (see --help; one that takes many says "
    .. "'repeat')\n"
end

-- Every command of the parser with its path (argparse's own tables: the
-- parser is the list, so a new flag or command is a new row).
local function commands()
  local out = {}
  local function walk(cmd, path)
    out[#out + 1] = { cmd = cmd, path = path }
    for _, c in ipairs(cmd._commands) do
      local p = {}
      for i, x in ipairs(path) do p[i] = x end
      p[#p + 1] = c._name
      walk(c, p)
    end
  end
  walk(cli.parser(), {})
  return out
end

-- The options to try: all but those that act and exit (help, version).
local function options_of(cmd)
  local out = {}
  for _, o in ipairs(cmd._options) do
    if o._name ~= "-h" and o._name ~= "--help" and o._name ~= "--version" then out[#out + 1] = o end
  end
  return out
end

-- A value the option takes (its first choice, or a word); nil for a flag.
local function value_of(o)
  if o._maxargs == 0 then return nil end
  return o._choices and o._choices[1] or "v"
end

describe("issue 66, once: every single-valued option of every command, given twice", function()
  local all = commands()
  local single, many = 0, 0
  for _, c in ipairs(all) do
    for _, o in ipairs(options_of(c.cmd)) do
      if o._maxcount == 1 then single = single + 1 else many = many + 1 end
    end
  end

  it("the parser has them all (" .. single .. " single-valued, " .. many .. " that take many)", function()
    -- (a walk that found nothing would pass every row below)
    assert.is_true(single > 600, tostring(single))
    assert.is_true(#all > 30, tostring(#all))
  end)

  for ci, c in ipairs(all) do
    local options = options_of(c.cmd)
    if #options > 0 then
      local name = #c.path > 0 and table.concat(c.path, " ") or "streamctl"
      it(name .. ": each of its " .. #options .. " options given twice is refused naming it, exit 2", function()
        local wrong = {}
        -- (under the sanitizers a fixed slice of them: the parser is Lua, the C it reaches the same)
        for _, o in ipairs(matrix.slice(options, ci)) do
          if o._maxcount == 1 then
            local v = value_of(o)
            local argv = argv_of(c.path, o._name, v and { v } or {}, o._name, v and { v } or {})
            local status, out, err = run(argv)
            if status ~= 2 or out ~= "" or err ~= twice(o._name) then
              wrong[#wrong + 1] = table.concat(argv, " ") .. " -> " .. tostring(status) .. " " .. err
            end
          end
        end
        assert.same({}, wrong)
      end)
    end
  end

  it("a flag that takes many says 'repeat' in its help, and every value given is read", function()
    local seen = 0
    for _, c in ipairs(all) do
      for _, o in ipairs(options_of(c.cmd)) do
        if o._maxcount ~= 1 then
          seen = seen + 1
          assert.truthy(o._description:find("repeat", 1, true), o._name .. ": " .. o._description)
          local ok, args = cli.parser():pparse(argv_of(c.path, o._name, "a", o._name, "b"))
          assert(ok, tostring(args))
          assert.same({ "a", "b" }, args[o._target or cli_output.option_of(o._name)], table.concat(c.path, " "))
        end
      end
    end
    -- (--source-urls of create and update, reconcile's --domain-name, issue-token's --stream-id, kickout-user's
    -- --user-ids, describe-forbid-stream-rules' --stream-ids)
    assert.equal(6, seen)
  end)

  for _, row in ipairs {
    { "zego reconcile --from A --from B --remove-extra", argv_of("zego", "reconcile", "--from", "a.txt", "--from",
      "b.txt", "--remove-extra", "--state", "s.json", ZEGO), "--from" },
    { "aliyun reconcile --from A --from B --remove-extra", argv_of("aliyun", "reconcile", "--from", "a.txt", "--from",
      "b.txt", "--remove-extra", ALI), "--from" },
    { "forbid-live-streams --domain-name X --domain-name Y", argv_of("aliyun", "forbid-live-streams", "--domain-name",
      "x.example.com", "--domain-name", "y.example.com", "--app-name", "live", "s1", ALI), "--domain-name" },
    { "forbid-live-stream --stream-name a --stream-name b", argv_of("aliyun", "forbid-live-stream", "--domain-name",
      "x.example.com", "--app-name", "live", "--stream-name", "a", "--stream-name", "b", ALI), "--stream-name" },
    { "forbid-live-streams --max-forbid 1 --max-forbid 1000", argv_of("aliyun", "forbid-live-streams",
      "--domain-name", "x.example.com", "--app-name", "live", "s1", "s2", "--max-forbid", "1", "--max-forbid", "1000",
      ALI), "--max-forbid" },
    { "ForbidLiveStream --DomainName X --domain-name Y (the service's name is the flag)", argv_of("aliyun",
      "ForbidLiveStream", "--DomainName", "x.example.com", "--domain-name", "y.example.com", ALI), "--domain-name" },
    { "-o json --output table", argv_of("zego", "forbid-rtc-stream", "--stream-id", "a", "-o", "json", "--output",
      "table", ZEGO), "--output" },
    { "man --install --prefix A --prefix B", { "man", "--install", "--prefix", HOME .. "/a", "--prefix",
      HOME .. "/b" }, "--prefix" },
  } do
    it(row[1] .. ": refused naming " .. row[3] .. ", exit 2, nothing read", function()
      local log = log_path()
      local status, out, err = run(argv_of(row[2], row[2][1] ~= "man" and { "--audit-log", log } or {}))
      assert.same({ 2, "", twice(row[3]) }, { status, out, err })
      assert.same({}, records(log))
    end)
  end
end)

describe("issue 66, once: call's Key=Value given twice", function()
  for _, row in ipairs {
    { "aliyun call ForbidLiveStream DomainName=a DomainName=b", argv_of("aliyun", "call", "ForbidLiveStream",
      "DomainName=a.example.com", "DomainName=b.example.com", "AppName=live", "StreamName=s", ALI),
      "streamctl: parameter 'DomainName' given twice: ForbidLiveStream takes one value\n" },
    { "zego call ForbidRTCStream StreamId=a StreamId=b", argv_of("zego", "call", "ForbidRTCStream", "StreamId=a",
      "StreamId=b", ZEGO), "streamctl: parameter 'StreamId' given twice: ForbidRTCStream takes one value\n" },
    { "aliyun call DescribeLiveStreamsBlockList PageSize=1 PageSize=2", argv_of("aliyun", "call",
      "DescribeLiveStreamsBlockList", "DomainName=a.example.com", "PageSize=1", "PageSize=2", ALI),
      "streamctl: parameter 'PageSize' given twice: DescribeLiveStreamsBlockList takes one value\n" },
    { "aliyun call DescribeLiveStreamsBlockList Foo=1 Foo=2 (a parameter it does not publish)", argv_of("aliyun",
      "call", "DescribeLiveStreamsBlockList", "DomainName=a.example.com", "Foo=1", "Foo=2", ALI),
      "streamctl: unknown parameter 'Foo': DescribeLiveStreamsBlockList takes DomainName, PageNum, PageSize\n" },
  } do
    it(row[1] .. ": refused naming the key, exit 2, no intent", function()
      local log = log_path()
      local status, out, err = run(argv_of(row[2], "--audit-log", log))
      assert.same({ 2, "", row[3] }, { status, out, err })
      assert.same({}, records(log))
    end)
  end

  it("a key whose field takes a list (ZEGO's StreamId of ForbidRTCStreams), or written Key[], is an array", function()
    local status, out, err = run(argv_of("zego", "call", "ForbidRTCStreams", "StreamId=a", "StreamId=b", ZEGO,
      "--dry-run"))
    assert.equal(0, status, err)
    assert.truthy(out:find("StreamId%5B%5D=a&StreamId%5B%5D=b", 1, true), out)
    -- (a published list: Aliyun's RepeatList written item by item, ZEGO's repeated under its page's name)
    status, out, err = run(argv_of("aliyun", "call", "UnTagLiveResources", "ResourceType=DOMAIN",
      "ResourceId=a.example.com", "ResourceId=b.example.com", ALI, "--dry-run"))
    assert.equal(0, status, err)
    assert.truthy(out:find("ResourceId.1=a.example.com&ResourceId.2=b.example.com&", 1, true), out)
    status, out, err = run(argv_of("aliyun", "call", "UnTagLiveResources", "ResourceType=DOMAIN",
      "ResourceId[]=a.example.com", ALI, "--dry-run"))
    assert.equal(0, status, err)
    assert.truthy(out:find("ResourceId.1=a.example.com&", 1, true), out)
    status, out, err = run(argv_of("zego", "call", "KickoutUser", "RoomId=r1", "UserId=u1", "UserId=u2", ZEGO,
      "--dry-run"))
    assert.equal(0, status, err)
    assert.truthy(out:find("&RoomId=r1&UserId=u1&UserId=u2", 1, true), out)
  end)
end)

describe("issue 66, call is the named command: a named action's parameters by its method's rules", function()
  local function days(n) return os.date("!%Y-%m-%dT%H:%M:%SZ", os.time() + n * 86400) end
  for _, row in ipairs {
    { "aliyun call ForbidLiveStream ResumeTime=2020-01-01T00:00:00Z", argv_of("aliyun", "call", "ForbidLiveStream",
      "DomainName=push.example.com", "AppName=live", "StreamName=s1", "LiveStreamType=publisher",
      "ResumeTime=2020-01-01T00:00:00Z", ALI),
      "streamctl: parameter 'ResumeTime' must be in the future (it is when the forbidden stream may publish again)\n" },
    { "zego call ForbidCDNLiveStream 40 days out", argv_of("zego", "call", "ForbidCDNLiveStream", "StreamId=x1",
      "ResumeTime=" .. days(40), ZEGO), "streamctl: parameter 'ResumeTime' must be at most 30 days ahead\n" },
    { "zego call ForbidCDNLiveStream ResumeTime past", argv_of("zego", "call", "ForbidCDNLiveStream", "StreamId=x1",
      "ResumeTime=2020-01-01T00:00:00Z", ZEGO), "streamctl: parameter 'ResumeTime' must be in the future\n" },
    { "aliyun call ForbidLiveStream without StreamName", argv_of("aliyun", "call", "ForbidLiveStream",
      "DomainName=push.example.com", "AppName=live", "LiveStreamType=publisher", ALI),
      "streamctl: parameter 'StreamName' is required\n" },
    { "aliyun call ForbidLiveStream RegionId='cn hangzhou'", argv_of("aliyun", "call", "ForbidLiveStream",
      "DomainName=push.example.com", "AppName=live", "StreamName=s1", "LiveStreamType=publisher",
      "RegionId=cn hangzhou", ALI),
      "streamctl: parameter 'RegionId' must be a region ID: lower-case letters and digits, words joined by '-' "
        .. "(cn-shanghai)\n" },
  } do
    it(row[1] .. ": refused naming the parameter, exit 2, no intent; its dry run too", function()
      local log = log_path()
      local status, out, err = run(argv_of(row[2], "--audit-log", log))
      assert.same({ 2, "", row[3] }, { status, out, err })
      assert.same({}, records(log))
      status, out, err = run(argv_of(row[2], "--dry-run"))
      assert.same({ 2, "", row[3] }, { status, out, err })
    end)
  end

  it("a parameter no field of the action names keeps the published method's rules alone (documented)", function()
    local status, out, err = run(argv_of("aliyun", "call", "DescribeLiveStreamsPublishList",
      "DomainName=a.example.com", "StartTime=2026-01-01T00:00:00Z", "EndTime=2026-01-01T01:00:00Z", "AppName=any",
      ALI, "--dry-run"))
    assert.equal(0, status, err)
    assert.truthy(out:find("AppName=any", 1, true), out)
  end)
end)

describe("issue 66, cosmetic rows of the command", function()
  it("man --install --prefix '': refused naming --prefix (it installed under /), nothing written", function()
    -- (the old code ran `mkdir -p /man/man1` as root: every write is caught here, none reaches the disk)
    local execute, open, rename = os.execute, io.open, os.rename
    local wrote = {}
    os.execute = function(cmd) wrote[#wrote + 1] = cmd return nil end -- luacheck: ignore 122
    io.open = function(path, mode) -- luacheck: ignore 122
      if mode and mode:find("[wa]") then wrote[#wrote + 1] = path return nil, "caught" end
      return open(path, mode)
    end
    os.rename = function(a) wrote[#wrote + 1] = a return nil end -- luacheck: ignore 122
    local ok, status, out, err = pcall(run, { "man", "--install", "--prefix", "" })
    os.execute, io.open, os.rename = execute, open, rename -- luacheck: ignore 122
    assert(ok, status)
    assert.same({ 2, "", "streamctl: man: --prefix must not be empty (a directory: DIR/man/man1 ...)\n", {} },
      { status, out, err, wrote })
  end)

  it("man --prefix DIR without --install: refused (it was ignored)", function()
    assert.same({ 2, "", "streamctl: man: --prefix goes with --install\n" },
      { run { "man", "--prefix", HOME .. "/share" } })
  end)

  it("reconcile --domain-name LIVE...: the error names --domain-name (it said '--domains', no such flag)", function()
    local desired = HOME .. "/desired.txt"
    process.write_file(desired, "push.example.com/live/s1\n")
    local status, out, err = run(argv_of("aliyun", "reconcile", "--from", desired, "--domain-name",
      "LIVE.example.com", ALI, "--no-audit-log"))
    assert.same({ 2, "", "streamctl: '--domain-name' item 1 must be lower case (live.example.com)\n" },
      { status, out, err })
  end)

  for _, row in ipairs {
    { "--sts-endpoint http://...", { "--sts-endpoint", "http://sts.example.com" }, nil,
      "streamctl: sts: InvalidParameter: '--sts-endpoint' must use https (plain http only for this machine: "
        .. "127.0.0.1, ::1, localhost)\n" },
    { "ALIBABA_CLOUD_STS_ENDPOINT=http://...", {}, { ALIBABA_CLOUD_STS_ENDPOINT = "http://sts.example.com" },
      "streamctl: sts: InvalidParameter: environment variable ALIBABA_CLOUD_STS_ENDPOINT must use https (plain "
        .. "http only for this machine: 127.0.0.1, ::1, localhost)\n" },
    { "ALIBABA_CLOUD_STS_REGION='cn hangzhou'", {}, { ALIBABA_CLOUD_STS_REGION = "cn hangzhou" },
      "streamctl: sts: InvalidParameter: environment variable ALIBABA_CLOUD_STS_REGION must not contain whitespace, "
        .. "CR, LF or NUL\n" },
    { "--ca-file that is not there", { "--ca-file", HOME .. "/none.pem" }, nil,
      "streamctl: sts: InvalidParameter: '--ca-file' cannot be read: " .. HOME .. "/none.pem does not exist\n" },
  } do
    it("aliyun whoami " .. row[1] .. ": the message names where it came from (it said option 'endpoint', "
      .. "'ca_file')", function()
      local status, out, err = run(argv_of("aliyun", "whoami", "--access-key-id", "LTAIexample",
        "--access-key-secret", "example-secret", row[2]), row[3])
      assert.same({ 1, "", row[4] }, { status, out, err })
    end)
  end

  it("a setting two names give says which wins: --emulator's help (beside --endpoint, --ca-file, the keys), "
    .. "--sts-endpoint's (ALIBABA_CLOUD_STS_ENDPOINT, then ALIBABA_CLOUD_STS_REGION)", function()
    -- (each command's help as --help writes it: argparse's, which exits the process when asked by --help)
    local help = {}
    for _, c in ipairs(commands()) do help[table.concat(c.path, " ")] = c.cmd:get_help():gsub("%s+", " ") end
    local out = help["zego forbid-rtc-stream"]
    assert.truthy(out:find("default account, each unless its own flag gives one (--endpoint, "
      .. "--ca-file, the credential flags; --profile with it is refused)", 1, true), out)
    out = help["aliyun whoami"]
    assert.truthy(out:find("(default: $ALIBABA_CLOUD_STS_ENDPOINT, else "
      .. "https://sts.$ALIBABA_CLOUD_STS_REGION.aliyuncs.com, else https://sts.aliyuncs.com, the first set winning;",
      1, true), out)
  end)

  local FORBID = argv_of("aliyun", "forbid-live-stream", "--domain-name", "push.example.com", "--app-name", "live",
    "--stream-name", "s1", ALI)
  it("ALIBABA_CLOUD_REGION_ID='cn hangzhou': refused naming the variable and the rule (it was sent as "
    .. "cn%20hangzhou)", function()
    local status, out, err = run(argv_of(FORBID, "--dry-run"), { ALIBABA_CLOUD_REGION_ID = "cn hangzhou" })
    assert.same({ 2, "", "streamctl: environment variable ALIBABA_CLOUD_REGION_ID (for --region-id) must be a "
      .. "region ID: lower-case letters and digits, words joined by '-' (cn-shanghai) (got 'cn hangzhou')\n" },
      { status, out, err })
    -- one in shape is taken
    status, out, err = run(argv_of(FORBID, "--dry-run"), { ALIBABA_CLOUD_REGION_ID = "cn-hangzhou" })
    assert.equal(0, status, err)
    assert.truthy(out:find("RegionId=cn-hangzhou", 1, true), out)
  end)

  for _, bad in ipairs { "cn hangzhou", "CN-Hangzhou", "cn-", "-cn", "cn--hangzhou", "cnhangzhou", "cn_hangzhou" } do
    it("--region-id '" .. bad .. "': refused naming the flag and the rule, no intent", function()
      local log = log_path()
      local status, out, err = run(argv_of(FORBID, "--region-id=" .. bad, "--audit-log", log))
      assert.same({ 2, "", "streamctl: '--region-id' must be a region ID: lower-case letters and digits, words "
        .. "joined by '-' (cn-shanghai)\n" }, { status, out, err })
      assert.same({}, records(log))
    end)
  end
end)
