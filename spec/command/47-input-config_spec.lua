-- tier: unit
-- Issue 47, the input side: flags and configuration. One `it` per row of
-- the fault matrix: the issue's rows "a typo in [defaults] (max-forbid = 5,
-- [Defaults]), or 0x100, 1e3, 200.0 for a count: silently ignored or
-- taken", "--max-forbid=9999999999999999999999, --audit-log '': a Lua
-- traceback, exit 1" and "ALIBABA_CLOUD_SECURITY_TOKEN set alone: ignored,
-- the [default] profile's keys used", and the other members of their
-- classes: every file streamctl reads settings or credentials from (its own
-- config, ~/.alibabacloud/credentials, aliyun-cli's config.json) refuses a
-- section or key it does not know, naming the file, the line and the name
-- meant; every count (flags, [defaults], a method's integer fields) is
-- decimal digits; a flag's value that names something is never empty; a
-- group of credential variables or flags set in part is an error naming
-- what is missing. The command runs in this process (cli.main) with a
-- fake environment and HOME, and as a dry run or a run the guard refuses:
-- no server is started and nothing is sent.
local credentials = require "streamctl.credentials"
local keys = require "streamctl.pipeline.keys"
local process = require "spec.helpers.process"

local format = string.format


-- A home directory holding `files` (path under it -> text), each mode 0600.
local function home_with(files)
  local dir = process.temp_dir()
  local dirs, paths = {}, {}
  for path in pairs(files or {}) do
    dirs[#dirs + 1] = process.quote(dir .. "/" .. (path:match("^(.*)/[^/]*$") or "."))
    paths[#paths + 1] = process.quote(dir .. "/" .. path)
  end
  if #paths == 0 then return dir end
  -- (one shell makes the directories and the empty files, mode 0600, that the texts then fill: a
  -- process a file made this file slow)
  local files_ = table.concat(paths, " ")
  assert(process.run("mkdir -p " .. table.concat(dirs, " ") .. " && touch " .. files_ .. " && chmod 600 " .. files_))
  for path, text in pairs(files) do process.write_file(dir .. "/" .. path, text) end
  return dir
end

-- Runs `argv` in this process with HOME at `home` and the variables `vars`:
-- the exit status, standard output and standard error (a raise fails the row).
local function run(argv, home, vars)
  return require("spec.helpers.checks").run_cli(argv, { -- (nothing on standard input: run_cli's own)
    getenv = function(name)
      if name == "HOME" then return home end
      return vars and vars[name]
    end })
end

local D = { "--domain-name", "push.example.com", "--app-name", "live" }
local KEYS = { "--access-key-id", "LTAIconfigspec", "--access-key-secret", "config-spec-secret" }
local ZKEYS = { "--app-id", "1234567890", "--server-secret", "0123456789abcdef0123456789abcdef" }

-- `aliyun forbid-live-streams` of one stream as a dry run (sends nothing), with `more` flags.
local function forbid(more, with_keys)
  local argv = { "aliyun", "forbid-live-streams", "a", "--dry-run", "--no-progress" }
  for _, list in ipairs { D, with_keys ~= false and KEYS or {}, more or {} } do
    for _, v in ipairs(list) do argv[#argv + 1] = v end
  end
  return argv
end

-- Exit 2, nothing on standard output, and exactly `message` on standard error.
local function usage(message, status, out, err)
  assert.equal("streamctl: " .. message .. "\n", err)
  assert.equal("", out)
  assert.equal(2, status)
end

local INI_DEFAULT = "[default]\naccess_key_id = LTAIfromini\naccess_key_secret = ini-secret\n"

describe("issue 47: configuration is strict", function()
  it("[defaults] max-forbid = 5 (a typo) is an error naming the file, the line and max_forbid", function()
    local home = home_with { [".config/streamctl/config"] = "[defaults]\noutput = json\nmax-forbid = 5\n" }
    usage(home .. "/.config/streamctl/config:3: unknown key 'max-forbid' in [defaults] (did you mean 'max_forbid'?)",
      run(forbid(), home))
  end)

  it("a section [Defaults] is an error naming the file, the line and [defaults]", function()
    local home = home_with { [".config/streamctl/config"] = "[zego]\napp_id = 1\nserver_secret = s\n"
      .. "[Defaults]\nmax_forbid = 5\n" }
    usage(home .. "/.config/streamctl/config:4: unknown section [Defaults] (did you mean 'defaults'?)",
      run(forbid(), home))
  end)

  it("[defaults] counts 0x100, 1e3, 200.0, +5, ' 5' are refused naming the line (decimal digits only)", function()
    for _, case in ipairs { { "max_forbid", "0x100", ">= 0" }, { "max_forbid", "1e3", ">= 0" },
                            { "max_resume", "200.0", ">= 0" }, { "concurrency", "+5", ">= 1" },
                            { "timeout_ms", "0x10", ">= 1" }, { "max_forbid", "99999999999999999999999", ">= 0" } } do
      local key, text = case[1], case[2]
      local home = home_with { [".config/streamctl/config"] = "[defaults]\n" .. key .. " = " .. text .. "\n" }
      local argv = key == "max_resume" and { "aliyun", "resume-live-streams", "a", "--dry-run", D[1], D[2], D[3], D[4],
        KEYS[1], KEYS[2], KEYS[3], KEYS[4] } or forbid()
      usage(format("%s/.config/streamctl/config:2: %s must be an integer %s in decimal digits (at most "
        .. "9007199254740991) (got '%s')", home, key, case[3], text), run(argv, home))
    end
    -- (the rate is a number: a decimal point is allowed, an exponent not)
    local home = home_with { [".config/streamctl/config"] = "[defaults]\nmax_rate = 1e3\n" }
    usage(home .. "/.config/streamctl/config:2: max_rate must be a number >= 0.0001 in decimal digits (a decimal "
      .. "point allowed) (got '1e3')", run(forbid(), home))
    home = home_with { [".config/streamctl/config"] = "[defaults]\nmax_rate = 2.5\nmax_forbid = 007\n" }
    local status = run(forbid(), home)
    assert.equal(0, status)
  end)

  it("an unknown key in [zego] or [zego.NAME] is an error naming the line (never a setting dropped)", function()
    local home = home_with { [".config/streamctl/config"] = "[zego]\napp_id = 1234567890\n"
      .. "server_secret = 0123456789abcdef0123456789abcdef\n[zego.staging]\napp_id = 1\nserver_secret = s\n"
      .. "endpoint = https://zego.example.com\n" }
    local c, err = credentials.zego { getenv = function() return nil end, home = home }
    assert.is_nil(c)
    assert.equal(home .. "/.config/streamctl/config:7: unknown key 'endpoint' in [zego.staging]", err.message)
    usage(home .. "/.config/streamctl/config:7: unknown key 'endpoint' in [zego.staging]",
      run({ "zego", "forbid-rtc-streams", "s1", "--dry-run" }, home))
  end)

  it("~/.alibabacloud/credentials: an unknown key is an error naming the line and the key meant; the official "
    .. "tools' other keys are taken", function()
    local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT .. "enabled = false\n" }
    usage(home .. "/.alibabacloud/credentials:4: unknown key 'enabled' in [default] (did you mean 'enable'?)",
      run(forbid(nil, false), home))
    -- (a Python SDK's oidc_role_arn section and credentials-go's legacy settings: accepted, not read)
    home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT .. "timeout = 5\n[py]\ntype = oidc_role_arn\n"
      .. "role_arn = acs:ram::1:role/r\noidc_provider_arn = p\noidc_token_file_path = /t\nrole_session_name = s\n" }
    local c, err = credentials.aliyun { getenv = function() return nil end, home = home }
    assert.is_nil(err)
    assert.equal("LTAIfromini", c.access_key_id)
  end)

  it("~/.alibabacloud/credentials: enable = no is refused (only false turned a section off)", function()
    local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT .. "enable = no\n" }
    usage(home .. "/.alibabacloud/credentials:4: enable must be true or false", run(forbid(nil, false), home))
  end)

  it("~/.alibabacloud/credentials: a security_token without type = sts is refused, never dropped", function()
    local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT .. "security_token = tok\n" }
    usage(home .. "/.alibabacloud/credentials:1: profile [default] has security_token (line 4), which its type, "
      .. "access_key, does not read: type sts reads it (set that type, or remove the key)", run(forbid(nil, false), home))
  end)

  it("aliyun-cli's config.json: an unknown key, a count not in digits, a switch not true/false are refused", function()
    local function config(extra)
      return '{"current":"dev","profiles":[{"name":"dev","mode":"RamRoleArn","access_key_id":"LTAIdev",\n'
        .. '"access_key_secret":"dev-secret","ram_role_arn":"acs:ram::1234567890123456:role/r",\n' .. extra .. "}]}"
    end
    local path_of = function(home) return home .. "/.aliyun/config.json" end
    for _, case in ipairs {
      { '"sts_endpiont":"sts.example"', ":3: profile 'dev' (profiles[1]) has an unknown key 'sts_endpiont' (did you "
        .. "mean 'sts_endpoint'?)" },
      { '"expired_seconds":"0x100"', ":3: profile 'dev' (profiles[1]): expired_seconds must be a whole number of "
        .. "seconds >= 1 (decimal digits)" },
      { '"expired_seconds":900.5, "enable_vpc":true', ":3: profile 'dev' (profiles[1]): expired_seconds must be a "
        .. "whole number of seconds >= 1 (decimal digits)" },
      { '"enable_vpc":"yes"', ":3: profile 'dev' (profiles[1]): enable_vpc must be true or false" },
      -- (a key with a pattern's characters is found as written, never a Lua error: the review's finding)
      { '"foo[":1', ":3: profile 'dev' (profiles[1]) has an unknown key 'foo[' (did you mean 'mode'?)" },
      { '"meta-path":1', ":3: profile 'dev' (profiles[1]) has an unknown key 'meta-path'" },
    } do
      local home = home_with { [".aliyun/config.json"] = config(case[1]) }
      local c, err = credentials.aliyun { getenv = function() return nil end, home = home }
      assert.is_nil(c)
      assert.equal(path_of(home) .. case[2], err.message)
    end
    local home = home_with { [".aliyun/config.json"] = '{"current":"dev","curent":"x","profiles":[]}' }
    local _, err = credentials.aliyun { getenv = function() return nil end, home = home }
    assert.equal(path_of(home) .. ":1: the file has an unknown key 'curent' (did you mean 'current'?)", err.message)
    -- (every field aliyun-cli writes is taken)
    home = home_with { [".aliyun/config.json"] = config('"expired_seconds":3600,"region_id":"cn-hangzhou",'
      .. '"output_format":"json","language":"en","site":"","retry_timeout":0,"connect_timeout":0,"retry_count":0,'
      .. '"sts_region":"","source_profile":"","verified":""') }
    local c
    c, err = credentials.aliyun { getenv = function() return nil end, home = home }
    assert.is_nil(err)
    assert.truthy(c.credentials)
  end)
end)

describe("issue 47: every flag's value is checked by its rule, a usage error naming the flag", function()
  it("--max-forbid=9999999999999999999999 (and --max-resume) is a usage error naming the flag, no traceback",
    function()
    usage("--max-forbid must be an integer >= 0 in decimal digits (at most 9007199254740991) (got "
      .. "'9999999999999999999999')", run(forbid { "--max-forbid=9999999999999999999999" }, home_with()))
    local argv = { "aliyun", "resume-live-streams", "a", "--max-resume=9999999999999999999999", "--dry-run" }
    for _, list in ipairs { D, KEYS } do for _, v in ipairs(list) do argv[#argv + 1] = v end end
    usage("--max-resume must be an integer >= 0 in decimal digits (at most 9007199254740991) (got "
      .. "'9999999999999999999999')", run(argv, home_with()))
  end)

  it("--audit-log '' is a usage error naming the flag, no traceback", function()
    -- (not a dry run: the audit log is opened; --max-forbid 0 refuses the run should it get that far)
    local argv = { "aliyun", "forbid-live-streams", "a", "--audit-log", "", "--max-forbid", "0" }
    for _, list in ipairs { D, KEYS } do for _, v in ipairs(list) do argv[#argv + 1] = v end end
    usage("--audit-log must not be empty", run(argv, home_with()))
  end)

  it("zego reconcile --state '' is a usage error naming the flag, no traceback", function()
    local home = home_with { ["desired.txt"] = "s1\n" }
    local argv = { "zego", "reconcile", "--from", home .. "/desired.txt", "--state", "", "--dry-run" }
    for _, v in ipairs(ZKEYS) do argv[#argv + 1] = v end
    usage("--state must not be empty", run(argv, home))
  end)

  it("--profile '' (and every flag that names a file, a URL or a key) empty: a usage error, never the default",
    function()
    local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT }
    usage("--profile must not be empty", run(forbid({ "--profile", "" }, false), home))
    for _, f in ipairs { "--endpoint", "--ca-file", "--proxy", "--redis", "--emulator-dir", "--from", "--audit-log",
                         "--account-id" } do
      usage(f .. " must not be empty", run(forbid { f, "" }, home))
    end
    usage("--access-key-id must not be empty", run(forbid({ "--access-key-id", "", "--access-key-secret", "s" }, false),
      home))
    usage("--server-secret must not be empty",
      run({ "zego", "forbid-rtc-streams", "s1", "--dry-run", "--app-id", "1234567890", "--server-secret", "" }, home))
  end)

  it("counts on the command line are decimal digits: 0x10, 1e3, 200.0, +5, ' 5' refused naming the flag", function()
    local home = home_with()
    for _, case in ipairs { { "--timeout", "0x10", ">= 1" }, { "--timeout", " 5", ">= 1" },
                            { "--concurrency", "1e1", ">= 1" }, { "--concurrency", "8.0", ">= 1" },
                            { "--max-forbid", "200.0", ">= 0" }, { "--max-forbid", "+5", ">= 0" },
                            { "--max-forbid", "0x100", ">= 0" } } do
      usage(format("%s must be an integer %s in decimal digits (at most 9007199254740991) (got '%s')", case[1], case[3],
        case[2]), run(forbid { case[1], case[2] }, home))
    end
    for _, text in ipairs { "1e3", "0x10", "inf", " 2" } do
      usage(format("--rate must be a number >= 0.0001 in decimal digits (a decimal point allowed) (got '%s')", text),
        run(forbid { "--rate", text }, home))
    end
    assert.equal(0, (run(forbid { "--timeout", "5000", "--concurrency", "16", "--rate", "2.5", "--max-forbid", "7" },
      home)))
  end)

  it("a method's integer field is decimal digits: --page-size 0x10 or 1e1 refused naming the flag", function()
    local home = home_with()
    for _, text in ipairs { "0x10", "1e1", "20.0" } do
      local status, out, err = run({ "aliyun", "describe-live-streams-block-list", "--domain-name", "push.example.com",
        "--page-size", text, "--dry-run", KEYS[1], KEYS[2], KEYS[3], KEYS[4] }, home)
      assert.equal(2, status)
      assert.equal("", out)
      assert.truthy(err:find("--page-size", 1, true), err)
      assert.truthy(err:find("must be an integer", 1, true), err)
    end
  end)
end)

describe("issue 47: a group of credential variables or flags set in part is an error naming what is missing",
  function()
  it("ALIBABA_CLOUD_SECURITY_TOKEN set alone: an error, never the [default] profile's keys", function()
    local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT }
    usage("ALIBABA_CLOUD_SECURITY_TOKEN is set but ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET "
      .. "are not (an STS token goes with its own keys)",
      run(forbid(nil, false), home, { ALIBABA_CLOUD_SECURITY_TOKEN = "tok" }))
  end)

  it("--security-token without --access-key-id and --access-key-secret: a usage error, never the chain's keys",
    function()
    local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT }
    usage("--security-token goes with --access-key-id and --access-key-secret (an STS token is used with its own "
      .. "keys)", run(forbid({ "--security-token", "tok" }, false), home))
  end)

  it("ALIBABA_CLOUD_ROLE_SESSION_NAME set without the OIDC variables: an error, never ignored", function()
    local home = home_with { [".alibabacloud/credentials"] = INI_DEFAULT }
    usage("ALIBABA_CLOUD_ROLE_SESSION_NAME is set but ALIBABA_CLOUD_OIDC_TOKEN_FILE, ALIBABA_CLOUD_OIDC_PROVIDER_ARN, "
      .. "ALIBABA_CLOUD_ROLE_ARN are not (it names the OIDC role's session)",
      run(forbid(nil, false), home, { ALIBABA_CLOUD_ROLE_SESSION_NAME = "cron" }))
  end)

  it("a credential from a file or a variable that breaks its rule names where it was read, never a flag not given",
    function()
    local home = home_with { [".config/streamctl/config"] = "[zego]\napp_id = 0x10\n"
      .. "server_secret = 0123456789abcdef0123456789abcdef\n" }
    usage(home .. "/.config/streamctl/config [zego]: app_id must be an integer in 1..4294967295",
      run({ "zego", "forbid-rtc-streams", "s1", "--dry-run" }, home))
    usage("environment variable ZEGO_APP_ID must be an integer in 1..4294967295",
      run({ "zego", "forbid-rtc-streams", "s1", "--dry-run" }, home_with(),
        { ZEGO_APP_ID = "1e3", ZEGO_SERVER_SECRET = "0123456789abcdef0123456789abcdef" }))
    home = home_with { [".alibabacloud/credentials"] = '[default]\naccess_key_id = "LTAI\tx"\naccess_key_secret = s\n' }
    usage(home .. "/.alibabacloud/credentials [default]: access_key_id must be printable ASCII",
      run(forbid(nil, false), home))
  end)

  it("a client made from the environment: a lone security token is named, not 'no credentials'", function()
    local env = { ALIBABA_CLOUD_SECURITY_TOKEN = "tok" }
    local out, err = keys.from_options(keys.VARIABLES.aliyun, {}, function(_, v) return v end, function(n) return env[n] end)
    assert.is_nil(out)
    assert.equal("ALIBABA_CLOUD_SECURITY_TOKEN is set but ALIBABA_CLOUD_ACCESS_KEY_ID and "
      .. "ALIBABA_CLOUD_ACCESS_KEY_SECRET are not (it goes with them)", err)
    -- (ZEGO's pair in part, the same rule, already so)
    env = { ZEGO_APP_ID = "1234567890" }
    out, err = keys.from_options(keys.VARIABLES.zego, {}, function(_, v) return v end, function(n) return env[n] end)
    assert.is_nil(out)
    assert.equal("ZEGO_APP_ID is set but ZEGO_SERVER_SECRET is not", err)
  end)
end)
