-- tier: unit
-- streamctl.credentials.aliyun: the source the official credential chain
-- picks from the environment and the profile files, one case a row (inputs
-- and the expected source, or the message), in memory: no file is touched
-- and nothing is contacted.
local cjson = require "cjson"
local chain = require "streamctl.credentials.aliyun"
local credentials = require "streamctl.credentials"

local HOME = "/home/u"
local CLI = HOME .. "/.aliyun/config.json"
local INI = HOME .. "/.alibabacloud/credentials"

local function cli(current, profiles)
  return cjson.encode { current = current, profiles = profiles }
end
local AK = { name = "default", mode = "AK", access_key_id = "KEY_CLI", access_key_secret = "s1" }
local INI_AK = "[default]\naccess_key_id = KEY_INI\naccess_key_secret = s2\n"
local ROLE = "acs:ram::1234567890123456:role/edge"

-- { what, env, files, expected source (the fields checked) or error message[, opts] }
local CASES = {
  { "the environment's keys", { ALIBABA_CLOUD_ACCESS_KEY_ID = "K", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "S" },
    { [CLI] = cli("default", { AK }), [INI] = INI_AK },
    { type = "access_key", from = "environment", access_key_id = "K", access_key_secret = "S" } },
  { "the environment's STS token", { ALIBABA_CLOUD_ACCESS_KEY_ID = "STS.K", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "S",
    ALIBABA_CLOUD_SECURITY_TOKEN = "T" }, {},
    { type = "sts", from = "environment", access_key_id = "STS.K", security_token = "T" } },
  { "an id without its secret", { ALIBABA_CLOUD_ACCESS_KEY_ID = "K", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "" },
    { [CLI] = cli("default", { AK }) },
    "ALIBABA_CLOUD_ACCESS_KEY_ID is set but ALIBABA_CLOUD_ACCESS_KEY_SECRET is not" },
  { "a secret without its id", { ALIBABA_CLOUD_ACCESS_KEY_SECRET = "S" }, {},
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET is set but ALIBABA_CLOUD_ACCESS_KEY_ID is not" },
  { "a token alone is an error, never dropped for a file's keys (issue 47)", { ALIBABA_CLOUD_SECURITY_TOKEN = "T" },
    { [INI] = INI_AK }, "ALIBABA_CLOUD_SECURITY_TOKEN is set but ALIBABA_CLOUD_ACCESS_KEY_ID and "
    .. "ALIBABA_CLOUD_ACCESS_KEY_SECRET are not (an STS token goes with its own keys)" },
  { "OIDC (RRSA) from the environment", { ALIBABA_CLOUD_OIDC_TOKEN_FILE = "/var/run/token",
    ALIBABA_CLOUD_OIDC_PROVIDER_ARN = "acs:ram::1:oidc-provider/ack", ALIBABA_CLOUD_ROLE_ARN = ROLE,
    ALIBABA_CLOUD_ROLE_SESSION_NAME = "pod-1", ALIBABA_CLOUD_STS_REGION = "cn-hangzhou",
    ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED = "TRUE" }, { [CLI] = cli("default", { AK }) },
    { type = "oidc_role_arn", from = "environment (OIDC)", oidc_token_file = "/var/run/token",
      oidc_provider_arn = "acs:ram::1:oidc-provider/ack", role_arn = ROLE, role_session_name = "pod-1",
      sts_region = "cn-hangzhou", enable_vpc = true } },
  { "the environment's keys and OIDC both: refused (the official chain takes the keys)",
    { ALIBABA_CLOUD_ACCESS_KEY_ID = "K", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "S",
    ALIBABA_CLOUD_OIDC_TOKEN_FILE = "/t", ALIBABA_CLOUD_OIDC_PROVIDER_ARN = "p", ALIBABA_CLOUD_ROLE_ARN = ROLE }, {},
    "the environment's keys (ALIBABA_CLOUD_ACCESS_KEY_ID) and the environment's OIDC role (ALIBABA_CLOUD_ROLE_ARN) "
    .. "both name credentials: unset one of them" },
  { "OIDC in part", { ALIBABA_CLOUD_OIDC_TOKEN_FILE = "/t", ALIBABA_CLOUD_ROLE_ARN = ROLE }, {},
    "ALIBABA_CLOUD_OIDC_TOKEN_FILE and ALIBABA_CLOUD_ROLE_ARN are set but ALIBABA_CLOUD_OIDC_PROVIDER_ARN is not "
    .. "(OIDC needs all three)" },
  { "aliyun-cli's file before the shared one", {}, { [CLI] = cli("default", { AK }), [INI] = INI_AK },
    { type = "access_key", from = CLI .. " [default]", access_key_id = "KEY_CLI", access_key_secret = "s1" } },
  { "aliyun-cli's current profile", {}, { [CLI] = cli("ops", { AK,
    { name = "ops", mode = "StsToken", access_key_id = "STS.O", access_key_secret = "s", sts_token = "T" } }) },
    { type = "sts", from = CLI .. " [ops]", access_key_id = "STS.O", security_token = "T" } },
  { "ALIBABA_CLOUD_PROFILE over current", { ALIBABA_CLOUD_PROFILE = "default" },
    { [CLI] = cli("ops", { AK, { name = "ops", mode = "AK", access_key_id = "O", access_key_secret = "s" } }) },
    { type = "access_key", access_key_id = "KEY_CLI" } },
  { "aliyun-cli turned off", { ALIBABA_CLOUD_CLI_PROFILE_DISABLED = "True" },
    { [CLI] = cli("default", { AK }), [INI] = INI_AK },
    { type = "access_key", from = INI .. " [default]", access_key_id = "KEY_INI", access_key_secret = "s2" } },
  { "a profile only the shared file has", {}, { [CLI] = cli("default", { AK }),
    [INI] = INI_AK .. "[prod]\naccess_key_id = P\naccess_key_secret = s\n" },
    { type = "access_key", from = INI .. " [prod]", access_key_id = "P" }, { profile = "prod" } },
  { "RamRoleArn", {}, { [CLI] = cli("r", { { name = "r", mode = "RamRoleArn", access_key_id = "K",
    access_key_secret = "S", ram_role_arn = ROLE, ram_session_name = "cron", expired_seconds = 1800,
    policy = '{"Version":"1"}', external_id = "x-1", sts_region = "cn-shanghai", sts_endpoint = "sts.example",
    enable_vpc = true } }) },
    { type = "ram_role_arn", from = CLI .. " [r]", role_arn = ROLE, role_session_name = "cron", duration_seconds = 1800,
      policy = '{"Version":"1"}', external_id = "x-1", sts_region = "cn-shanghai", sts_endpoint = "sts.example",
      enable_vpc = true, source = { type = "access_key", access_key_id = "K", access_key_secret = "S" } } },
  { "RamRoleArn from an STS token", {}, { [CLI] = cli("r", { { name = "r", mode = "RamRoleArn",
    access_key_id = "STS.K", access_key_secret = "S", sts_token = "T", ram_role_arn = ROLE } }) },
    { type = "ram_role_arn", role_arn = ROLE, source = { type = "sts", security_token = "T" } } },
  { "ChainableRamRoleArn, two links", {}, { [CLI] = cli("c2", { AK,
    { name = "c1", mode = "ChainableRamRoleArn", source_profile = "default", ram_role_arn = ROLE .. "-1" },
    { name = "c2", mode = "ChainableRamRoleArn", source_profile = "c1", ram_role_arn = ROLE .. "-2" } }) },
    { type = "ram_role_arn", from = CLI .. " [c2]", role_arn = ROLE .. "-2", source = { type = "ram_role_arn",
      from = CLI .. " [c1]", role_arn = ROLE .. "-1", source = { type = "access_key", access_key_id = "KEY_CLI" } } } },
  { "a chain in a circle", {}, { [CLI] = cli("a", {
    { name = "a", mode = "ChainableRamRoleArn", source_profile = "b", ram_role_arn = ROLE },
    { name = "b", mode = "ChainableRamRoleArn", source_profile = "a", ram_role_arn = ROLE } }) },
    CLI .. ": profile 'a' (profiles[1]): source_profile goes round in a circle (a -> b -> a)" },
  { "a chain to nowhere", {}, { [CLI] = cli("a", {
    { name = "a", mode = "ChainableRamRoleArn", source_profile = "gone", ram_role_arn = ROLE } }) },
    CLI .. ": profile 'a' (profiles[1]): its source_profile 'gone' is not in the file" },
  { "EcsRamRole", {}, { [CLI] = cli("e", { { name = "e", mode = "EcsRamRole", ram_role_name = "edge" } }) },
    { type = "ecs_ram_role", from = CLI .. " [e]", role_name = "edge" } },
  { "OIDC mode: duration_seconds over expired_seconds", {}, { [CLI] = cli("o", { { name = "o", mode = "OIDC",
    oidc_provider_arn = "p", oidc_token_file = "/t", ram_role_arn = ROLE, expired_seconds = 900,
    duration_seconds = 2400 } }) },
    { type = "oidc_role_arn", oidc_provider_arn = "p", oidc_token_file = "/t", role_arn = ROLE,
      duration_seconds = 2400 } },
  { "a mode streamctl does not serve", {}, { [CLI] = cli("s", { { name = "s", mode = "CloudSSO" } }) },
    CLI .. ": profile 's' (profiles[1]) has mode 'CloudSSO', which streamctl does not serve (it serves AK, "
    .. "ChainableRamRoleArn, EcsRamRole, OIDC, RamRoleArn, StsToken)" },
  { "External", {}, { [CLI] = cli("x", { { name = "x", mode = "External", process_command = "x" } }) },
    CLI .. ": profile 'x' (profiles[1]) has mode 'External', which streamctl does not serve (it serves AK, "
    .. "ChainableRamRoleArn, EcsRamRole, OIDC, RamRoleArn, StsToken)" },
  { "a mode's missing field", {}, { [CLI] = cli("r", { { name = "r", mode = "RamRoleArn", access_key_id = "K",
    access_key_secret = "S" } }) }, CLI .. ": profile 'r' (profiles[1]) has no ram_role_arn" },
  { "the shared file's ram_role_arn", {}, { [INI] = "[default]\ntype = ram_role_arn\naccess_key_id = K\n"
    .. "access_key_secret = S\nrole_arn = " .. ROLE .. "\nrole_session_name = s1\npolicy = {}\n" },
    { type = "ram_role_arn", from = INI .. " [default]", role_arn = ROLE, role_session_name = "s1", policy = "{}",
      source = { type = "access_key", access_key_id = "K", access_key_secret = "S" } } },
  { "the shared file's ecs_ram_role, role asked for", {}, { [INI] = "[default]\ntype = ecs_ram_role\n" },
    { type = "ecs_ram_role", from = INI .. " [default]" } },
  { "the shared file's sts", {}, { [INI] = "[default]\ntype = sts\naccess_key_id = K\naccess_key_secret = S\n"
    .. "security_token = T\n" }, { type = "sts", security_token = "T" } },
  { "a type streamctl does not serve", {}, { [INI] = "[default]\ntype = oidc_role_arn\n" },
    INI .. ":1: profile [default] has type 'oidc_role_arn', which streamctl does not serve (it serves access_key, "
    .. "ecs_ram_role, ram_role_arn, sts)" },
  { "a section turned off", { ALIBABA_CLOUD_CREDENTIALS_URI = "http://127.0.0.1:9/c" },
    { [INI] = INI_AK:gsub("\n", "\nenable = false\n", 1) },
    { type = "credentials_uri", uri = "http://127.0.0.1:9/c" } },
  { "ALIBABA_CLOUD_CREDENTIALS_FILE", { ALIBABA_CLOUD_CREDENTIALS_FILE = "/etc/ali" },
    { [INI] = INI_AK, ["/etc/ali"] = "[default]\naccess_key_id = E\naccess_key_secret = s\n" },
    { type = "access_key", from = "/etc/ali [default]", access_key_id = "E" } },
  { "ECS: the role named", { ALIBABA_CLOUD_ECS_METADATA = "edge", ALIBABA_CLOUD_IMDSV1_DISABLED = "true" }, {},
    { type = "ecs_ram_role", from = "the ECS instance's RAM role", role_name = "edge", imdsv1_disabled = true } },
  { "ECS: the machine says so", {}, { [chain.DMI_VENDOR] = "Alibaba Cloud\n" },
    { type = "ecs_ram_role", imdsv1_disabled = false } },
  { "ECS turned off", { ALIBABA_CLOUD_ECS_METADATA_DISABLED = "true",
    ALIBABA_CLOUD_CREDENTIALS_URI = "http://127.0.0.1:9/c" }, { [chain.DMI_VENDOR] = "Alibaba Cloud\n" },
    { type = "credentials_uri" } },
  { "ECS turned off with a role named: refused", { ALIBABA_CLOUD_ECS_METADATA_DISABLED = "true",
    ALIBABA_CLOUD_ECS_METADATA = "edge" }, {},
    "ALIBABA_CLOUD_ECS_METADATA names the RAM role 'edge' but ALIBABA_CLOUD_ECS_METADATA_DISABLED is true: unset one "
    .. "of them" },
  { "a URI named beats the [default] nobody named, and the DMI", { ALIBABA_CLOUD_CREDENTIALS_URI = "http://h/c" },
    { [INI] = INI_AK, [CLI] = cli("default", { AK }), [chain.DMI_VENDOR] = "Alibaba Cloud\n" },
    { type = "credentials_uri", uri = "http://h/c" } },
  { "a role named beats aliyun-cli's current", { ALIBABA_CLOUD_ECS_METADATA = "edge" },
    { [CLI] = cli("default", { AK }) }, { type = "ecs_ram_role", role_name = "edge" } },
  { "a role and a URI both named: refused", { ALIBABA_CLOUD_ECS_METADATA = "edge",
    ALIBABA_CLOUD_CREDENTIALS_URI = "http://h/c" }, {},
    "ALIBABA_CLOUD_ECS_METADATA (the RAM role 'edge') and ALIBABA_CLOUD_CREDENTIALS_URI both name credentials: "
    .. "unset one of them" },
  { "ALIBABA_CLOUD_CREDENTIALS_FILE: that file alone, not aliyun-cli's current", {
    ALIBABA_CLOUD_CREDENTIALS_FILE = "/etc/ali" }, { [CLI] = cli("default", { AK }),
    ["/etc/ali"] = "[default]\naccess_key_id = E\naccess_key_secret = s\n" },
    { type = "access_key", from = "/etc/ali [default]", access_key_id = "E" } },
  { "ALIBABA_CLOUD_CREDENTIALS_FILE without [default]", { ALIBABA_CLOUD_CREDENTIALS_FILE = "/etc/ali" },
    { [INI] = INI_AK, ["/etc/ali"] = "[prod]\naccess_key_id = E\naccess_key_secret = s\n" },
    "ALIBABA_CLOUD_CREDENTIALS_FILE names /etc/ali, which has no profile [default]" },
  { "a profile named, not in the named file (though in aliyun-cli's)", { ALIBABA_CLOUD_CREDENTIALS_FILE = "/etc/ali",
    ALIBABA_CLOUD_PROFILE = "default" }, { [CLI] = cli("default", { AK }), ["/etc/ali"] = "[prod]\nrole_name = r\n" },
    "profile 'default' (named by ALIBABA_CLOUD_PROFILE) is not in /etc/ali (named by ALIBABA_CLOUD_CREDENTIALS_FILE)" },
  { "the environment's keys and a named file: refused", { ALIBABA_CLOUD_ACCESS_KEY_ID = "K",
    ALIBABA_CLOUD_ACCESS_KEY_SECRET = "S", ALIBABA_CLOUD_CREDENTIALS_FILE = "/etc/ali" }, {},
    "ALIBABA_CLOUD_CREDENTIALS_FILE (/etc/ali) and the environment's keys (ALIBABA_CLOUD_ACCESS_KEY_ID) both name "
    .. "credentials: unset one of them" },
  { "another cloud's machine", {}, { [chain.DMI_VENDOR] = "Amazon EC2\n" },
    "no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or add "
    .. "profile [default] to " .. INI .. " or " .. CLI },
  { "nothing, and no home", {}, { [INI] = INI_AK },
    "no Alibaba Cloud credentials: set ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET",
    { home = false } },
}

-- Checks that `got` has every field of `want` (nested sources too).
local function has(want, got, path)
  for k, v in pairs(want) do
    if type(v) == "table" then
      assert.is_table(got[k], path .. "." .. k)
      has(v, got[k], path .. "." .. k)
    else
      assert.equal(v, got[k], path .. "." .. k)
    end
  end
end

describe("streamctl.credentials.aliyun.resolve", function()
  for _, case in ipairs(CASES) do
    local what, env, files, expected, opts = case[1], case[2], case[3], case[4], case[5] or {}
    it(what, function()
      local read = function(path)
        local text = files[path]
        if text == nil then return nil end
        return text
      end
      local source, err = chain.resolve { getenv = function(name) return env[name] end, read = read,
        home = opts.home ~= false and HOME or nil, profile = opts.profile, parse_ini = credentials.parse_ini }
      if type(expected) == "string" then
        assert.is_nil(source)
        assert.equal(expected, err)
      else
        assert.is_nil(err)
        has(expected, source, "source")
      end
    end)
  end

  it("refuses a clock that is not a function, naming the option (streamctl.credentials.aliyun and .holder)",
    function()
    assert.has_error(function() credentials.aliyun { clock = 5 } end,
      "bad argument #1 to 'aliyun' (opts.clock must be a function)")
    assert.has_error(function() credentials.holder({ type = "ecs_ram_role" }, { clock = "now" }) end,
      "bad argument #2 to 'holder' (opts.clock must be a function)")
  end)

  it("is what streamctl.credentials.aliyun gives a client: keys, or a holder that renews (nothing asked yet)", function()
    local env = { HOME = "/nonexistent", ALIBABA_CLOUD_ECS_METADATA = "edge" }
    local creds, err = credentials.aliyun { getenv = function(name) return env[name] end }
    assert.is_nil(err)
    assert.equal("streamctl credentials from the ECS instance's RAM role (edge)", tostring(creds.credentials))
    assert.equal(0, creds.credentials.fetches) -- (nothing is asked until a call is signed)
    env = { ALIBABA_CLOUD_OIDC_TOKEN_FILE = "/t", ALIBABA_CLOUD_OIDC_PROVIDER_ARN = "p",
            ALIBABA_CLOUD_ROLE_ARN = "acs:ram::1234567890123456:role/pods" }
    creds, err = credentials.aliyun { getenv = function(name) return env[name] end }
    assert.is_nil(err)
    assert.equal("streamctl credentials from environment (OIDC) (acs:ram::1234567890123456:role/pods)",
      tostring(creds.credentials))
    assert.equal("1234567890123456", creds.credentials.account_id)
    assert.equal(0, creds.credentials.fetches)
    env = { ALIBABA_CLOUD_ACCESS_KEY_ID = "K", ALIBABA_CLOUD_ACCESS_KEY_SECRET = "S", ALIBABA_CLOUD_SECURITY_TOKEN = "T" }
    local getenv = function(name) return env[name] end
    creds, err = credentials.aliyun { getenv = getenv }
    assert.is_nil(err)
    assert.same({ access_key_id = "K", access_key_secret = "S", security_token = "T" }, creds)
    assert.equal("environment", select(4, credentials.aliyun { getenv = getenv }))
  end)
end)
