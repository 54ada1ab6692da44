--- The Alibaba Cloud credential chain: which source the environment and the
-- two profile files name, read the way the official `@alicloud/credentials`
-- package (2.4.7) reads them, in its order:
--
--   1. environment: ALIBABA_CLOUD_ACCESS_KEY_ID and _ACCESS_KEY_SECRET
--      (with ALIBABA_CLOUD_SECURITY_TOKEN: an STS token)
--   2. OIDC (RRSA): ALIBABA_CLOUD_OIDC_TOKEN_FILE, _OIDC_PROVIDER_ARN and
--      ALIBABA_CLOUD_ROLE_ARN (ALIBABA_CLOUD_ROLE_SESSION_NAME,
--      _STS_REGION, _VPC_ENDPOINT_ENABLED optional)
--   3. aliyun-cli's ~/.aliyun/config.json (skipped when
--      ALIBABA_CLOUD_CLI_PROFILE_DISABLED is true): the profile named by
--      `opts.profile` or ALIBABA_CLOUD_PROFILE, else the file's `current`;
--      modes AK, StsToken, RamRoleArn, ChainableRamRoleArn (its
--      source_profile resolved in the same file), EcsRamRole and OIDC
--   4. the shared credentials file, $ALIBABA_CLOUD_CREDENTIALS_FILE or
--      ~/.alibabacloud/credentials: the section named as above, else
--      [default]; types access_key (the default), ecs_ram_role and
--      ram_role_arn, and sts (which older official SDKs read); a section with
--      `enable = false` is skipped
--   5. the ECS instance's RAM role, through the metadata service (skipped
--      when ALIBABA_CLOUD_ECS_METADATA_DISABLED is true): ALIBABA_CLOUD_ECS_METADATA
--      names the role (else it is asked for); ALIBABA_CLOUD_IMDSV1_DISABLED
--   6. ALIBABA_CLOUD_CREDENTIALS_URI
--
-- Where streamctl is stricter than the official chain, on purpose (a
-- failure is never silent, and a process never runs as an identity its
-- operator did not pick):
--
-- * What the operator names is the one used, or an error naming it; never
--   the next source. Named: the environment's keys, the OIDC variables, a
--   profile (`opts.profile`, ALIBABA_CLOUD_PROFILE) and/or a credentials
--   file (ALIBABA_CLOUD_CREDENTIALS_FILE: the profile, else [default], from
--   that file alone; aliyun-cli's config is not read then),
--   ALIBABA_CLOUD_ECS_METADATA (a role) and ALIBABA_CLOUD_CREDENTIALS_URI.
--   Two of them named is an error naming both (the official chain takes the
--   first in its order). One named beats what the files say unnamed
--   (aliyun-cli's `current`, a [default] section) and an ECS machine's DMI.
--   aliyun-cli's `current` naming a profile the file lacks is an error.
-- * The chain picks the first source that is *configured*, and that source
--   is the one used: if it later fails (its role cannot be assumed, the
--   metadata service is down), calls fail naming it. The official chain
--   tries each source at call time and moves on past one that fails, so a
--   broken role would quietly give way to, say, an instance role.
-- * A group set in part (an AccessKeyId without its secret, one or two of
--   the three OIDC variables) is an error naming what is missing, where the
--   official chain skips it.
-- * A profile mode or type the official SDK does not serve here (External,
--   CloudSSO, OAuth, CredentialsURI and the CLI-only modes; the types
--   oidc_role_arn, rsa_key_pair) is an error naming it.
-- * The metadata service is asked only on an ECS instance: when
--   ALIBABA_CLOUD_ECS_METADATA names the role, or the machine says it is one
--   (/sys/class/dmi/id/sys_vendor is "Alibaba Cloud"). The official chain asks
--   100.100.100.200 everywhere and waits a second for nothing off ECS; in a
--   container on ECS that hides the DMI, set ALIBABA_CLOUD_ECS_METADATA.
--
-- A source is a table: `type` ("access_key", "sts", "ram_role_arn",
-- "oidc_role_arn", "ecs_ram_role" or "credentials_uri"), `from` (where it
-- was found, for messages: never a secret), and its fields: access_key_id,
-- access_key_secret, security_token; role_arn, role_session_name, policy,
-- external_id, duration_seconds, sts_endpoint, sts_region, enable_vpc and,
-- for a role, `source` (the source of the keys that assume it);
-- oidc_provider_arn, oidc_token_file; role_name, imdsv1_disabled; uri.
-- @module streamctl.credentials.aliyun

local cli = require "streamctl.credentials.aliyun_cli"

local type, pairs, ipairs = type, pairs, ipairs
local format, match, lower = string.format, string.match, string.lower
local concat = table.concat

local M = {}

-- The variables each part of the chain reads.
local ENV = {
  id = "ALIBABA_CLOUD_ACCESS_KEY_ID", secret = "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
  token = "ALIBABA_CLOUD_SECURITY_TOKEN",
  oidc = { "ALIBABA_CLOUD_OIDC_TOKEN_FILE", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_ROLE_ARN" },
  session = "ALIBABA_CLOUD_ROLE_SESSION_NAME", sts_region = "ALIBABA_CLOUD_STS_REGION",
  vpc = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED",
  profile = "ALIBABA_CLOUD_PROFILE", cli_disabled = "ALIBABA_CLOUD_CLI_PROFILE_DISABLED",
  file = "ALIBABA_CLOUD_CREDENTIALS_FILE",
  ecs_disabled = "ALIBABA_CLOUD_ECS_METADATA_DISABLED", ecs_role = "ALIBABA_CLOUD_ECS_METADATA",
  imdsv1_disabled = "ALIBABA_CLOUD_IMDSV1_DISABLED",
  uri = "ALIBABA_CLOUD_CREDENTIALS_URI",
}
M.ENV = ENV

-- Where the machine says who made it (an ECS instance: "Alibaba Cloud").
M.DMI_VENDOR = "/sys/class/dmi/id/sys_vendor"

-- The official SDKs count only the string "true", in any case, as true.
local function is_true(v)
  return type(v) == "string" and lower(v) == "true"
end

local nonempty, lacks = cli.nonempty, cli.lacks

-- 1. the environment's keys: a source, nil, or nil and what is missing.
local function from_env_keys(getenv)
  local id, secret = nonempty(getenv(ENV.id)), nonempty(getenv(ENV.secret))
  if not id and not secret then
    -- (a token alone is no identity: the official chain drops it and takes
    -- the next source's keys, so the operator's STS session is silently not the one used)
    if nonempty(getenv(ENV.token)) then
      return nil, format("%s is set but %s and %s are not (an STS token goes with its own keys)", ENV.token,
        ENV.id, ENV.secret)
    end
    return nil
  end
  if not secret then return nil, ENV.id .. " is set but " .. ENV.secret .. " is not" end
  if not id then return nil, ENV.secret .. " is set but " .. ENV.id .. " is not" end
  local token = nonempty(getenv(ENV.token))
  return { type = token and "sts" or "access_key", from = "environment", access_key_id = id,
           access_key_secret = secret, security_token = token }
end

-- 2. OIDC from the environment (RRSA): a source, nil, or nil and what is missing.
local function from_env_oidc(getenv)
  local set, unset = {}, {}
  for _, name in ipairs(ENV.oidc) do
    if nonempty(getenv(name)) then set[#set + 1] = name else unset[#unset + 1] = name end
  end
  if #set == 0 then
    -- (read for the OIDC role alone: set without it, it would name no session)
    if nonempty(getenv(ENV.session)) then
      return nil, format("%s is set but %s are not (it names the OIDC role's session)", ENV.session,
        concat(ENV.oidc, ", "))
    end
    return nil
  end
  if #unset > 0 then
    return nil, format("%s %s set but %s %s not (OIDC needs all three)", concat(set, " and "),
      #set == 1 and "is" or "are", concat(unset, " and "), #unset == 1 and "is" or "are")
  end
  return { type = "oidc_role_arn", from = "environment (OIDC)", oidc_token_file = getenv(ENV.oidc[1]),
           oidc_provider_arn = getenv(ENV.oidc[2]), role_arn = getenv(ENV.oidc[3]),
           role_session_name = nonempty(getenv(ENV.session)), sts_region = nonempty(getenv(ENV.sts_region)),
           enable_vpc = is_true(getenv(ENV.vpc)) }
end

-- aliyun-cli's config.json, read as the chain's third part (streamctl.credentials.aliyun_cli).
M.CLI_TOP_KEYS, M.CLI_PROFILE_KEYS, M.CLI_MODES = cli.TOP_KEYS, cli.PROFILE_KEYS, cli.MODES
local from_cli_config = cli.read

-- The types of the shared credentials file's sections.
local INI_TYPES = {
  access_key = { keys = { "access_key_id", "access_key_secret" }, make = function(s, from)
    return { type = "access_key", from = from, access_key_id = s.access_key_id,
             access_key_secret = s.access_key_secret }
  end },
  sts = { keys = { "access_key_id", "access_key_secret", "security_token" }, make = function(s, from)
    return { type = "sts", from = from, access_key_id = s.access_key_id, access_key_secret = s.access_key_secret,
             security_token = s.security_token }
  end },
  ram_role_arn = { keys = { "access_key_id", "access_key_secret", "role_arn", "role_session_name" },
    make = function(s, from)
      return { type = "ram_role_arn", from = from, role_arn = s.role_arn, role_session_name = s.role_session_name,
               policy = nonempty(s.policy),
               source = { type = "access_key", from = from, access_key_id = s.access_key_id,
                          access_key_secret = s.access_key_secret } }
    end },
  ecs_ram_role = { keys = {}, make = function(s, from)
    return { type = "ecs_ram_role", from = from, role_name = nonempty(s.role_name) }
  end },
}
M.INI_TYPES = {}
for t in pairs(INI_TYPES) do M.INI_TYPES[#M.INI_TYPES + 1] = t end
table.sort(M.INI_TYPES)

-- The keys each type of section reads, beyond `type` and `enable` (its
-- `keys` and the optional ones).
local INI_OPTIONAL = { ram_role_arn = { "policy" }, ecs_ram_role = { "role_name" } }

--- The keys the official tools write in the shared credentials file that
-- streamctl takes without reading them (a section of a type it does not
-- serve, and the legacy Go SDK's settings): oidc_role_arn's and
-- rsa_key_pair's (Python), bearer's and the per-section timeout,
-- connect_timeout, proxy and host (credentials-go's older reader). Any key
-- neither read nor listed here is refused, naming the line (a typo, such as
-- `acess_key_id` or `enabled`, would otherwise be a setting silently not made).
M.INI_OTHER_KEYS = { "oidc_provider_arn", "oidc_token_file_path", "public_key_id", "private_key_file",
  "bearer_token", "session_expiration", "timeout", "connect_timeout", "proxy", "host" }

-- Every key a section may hold (a set), and for each key the types that read it.
local INI_KEYS, READ_BY = { type = true, enable = true }, {}
for name, t in pairs(INI_TYPES) do
  for _, list in ipairs { t.keys, INI_OPTIONAL[name] or {} } do
    for _, k in ipairs(list) do
      INI_KEYS[k] = true
      READ_BY[k] = READ_BY[k] or {}
      READ_BY[k][#READ_BY[k] + 1] = name
    end
  end
end
for _, k in ipairs { "role_arn", "role_session_name", "policy" } do INI_KEYS[k] = true end
for _, k in ipairs(M.INI_OTHER_KEYS) do INI_KEYS[k] = true end
for _, types in pairs(READ_BY) do table.sort(types) end
-- (every section of the file is a profile: any name, the same keys)
local function ini_keys() return INI_KEYS end

-- Section `s` (of type `kind`) holds a key its type does not read but
-- another does (`security_token` without `type = sts`, `role_arn` without
-- `type = ram_role_arn`): what the profile was meant to be is not what it
-- says, and it is refused rather than used as the keys alone. Said, or nil.
local function misplaced(s, kind, where)
  local reads = { type = true, enable = true }
  for _, list in ipairs { INI_TYPES[kind].keys, INI_OPTIONAL[kind] or {} } do
    for _, k in ipairs(list) do reads[k] = true end
  end
  local found
  for k in pairs(s) do
    if READ_BY[k] and not reads[k] and (not found or s._lines[k] < s._lines[found]) then found = k end
  end
  if not found then return nil end
  return format("%s has %s (line %d), which its type, %s, does not read: type %s reads it (set that type, or "
    .. "remove the key)", where, found, s._lines[found], kind, concat(READ_BY[found], " or "))
end

-- 4. the shared credentials file: a source; nil (no such section); nil, nil, "absent" (no such
-- file); or nil and an error (then "unreadable" when the file could not be read). A section turned
-- off (enable = false) is skipped, unless named.
local function from_credentials_file(read, parse_ini, path, profile, explicit)
  local text, err = read(path)
  if not text then return nil, err, err and "unreadable" or "absent" end
  local sections, perr = parse_ini(text, path, ini_keys)
  if not sections then return nil, perr end
  local s = sections[profile]
  if not s then return nil end
  local where = format("%s:%d: profile [%s]", path, s._line, profile)
  local enable = lower(s.enable or "true")
  if enable ~= "true" and enable ~= "false" then
    -- (only "false" turns a section off: `enable = no` would leave it on without a word)
    return nil, format("%s:%d: enable must be true or false", path, s._lines.enable)
  end
  if enable == "false" then
    if explicit then return nil, where .. " is turned off (enable = false), and it is the one named" end
    return nil
  end
  local kind = lower(s.type or "access_key")
  local t = INI_TYPES[kind]
  if not t then
    return nil, format("%s has type '%s', which streamctl does not serve (it serves %s)", where, kind,
      concat(M.INI_TYPES, ", "))
  end
  local why = lacks(s, t.keys, where) or misplaced(s, kind, where)
  if why then return nil, why end
  return t.make(s, format("%s [%s]", path, profile))
end

-- 5. Is this an ECS instance (or is a role named)?
local function on_ecs(read, getenv)
  if nonempty(getenv(ENV.ecs_role)) then return true end
  local vendor = read(M.DMI_VENDOR)
  return vendor ~= nil and match(vendor, "^%s*(.-)%s*$") == "Alibaba Cloud"
end

-- What the operator named, in the chain's order: an array of `{ what =,
-- kind = }` (kind: "keys", "oidc", "profile", "ecs", "uri"), the
-- environment's source when it named one, or nil and why (a group set in
-- part, a role named with the metadata service turned off).
local function named_sources(opts, getenv)
  local list = {}
  local keys, kerr = from_env_keys(getenv)
  if kerr then return nil, kerr end
  local oidc, oerr = from_env_oidc(getenv)
  if oerr then return nil, oerr end
  local profile = nonempty(opts.profile) or nonempty(getenv(ENV.profile))
  local file = nonempty(getenv(ENV.file))
  if profile then
    list[#list + 1] = { kind = "profile", what = format("profile '%s' (named by %s)", profile,
      nonempty(opts.profile) and "the profile option, --profile" or ENV.profile) }
  elseif file then
    list[#list + 1] = { kind = "profile", what = format("%s (%s)", ENV.file, file) }
  end
  if keys then
    list[#list + 1] = { kind = "keys", what = format("the environment's keys (%s)", ENV.id), source = keys }
  end
  if oidc then
    list[#list + 1] = { kind = "oidc", what = format("the environment's OIDC role (%s)", ENV.oidc[3]), source = oidc }
  end
  local role = nonempty(getenv(ENV.ecs_role))
  if role then
    if is_true(getenv(ENV.ecs_disabled)) then
      return nil, format("%s names the RAM role '%s' but %s is true: unset one of them", ENV.ecs_role, role,
        ENV.ecs_disabled)
    end
    list[#list + 1] = { kind = "ecs", what = format("%s (the RAM role '%s')", ENV.ecs_role, role) }
  end
  if nonempty(getenv(ENV.uri)) then list[#list + 1] = { kind = "uri", what = ENV.uri } end
  return list, nil, profile, file
end

-- The instance's role, and a credentials URI, as sources.
local function ecs_source(getenv)
  return { type = "ecs_ram_role", from = "the ECS instance's RAM role", role_name = nonempty(getenv(ENV.ecs_role)),
           imdsv1_disabled = is_true(getenv(ENV.imdsv1_disabled)) }
end

-- ALIBABA_CLOUD_CREDENTIALS_FILE named: the profile (named, else [default])
-- from that file, and from no other: the source, or nil and why; the file.
local function from_named_file(read, parse_ini, path, profile, named)
  local s, err, kind = from_credentials_file(read, parse_ini, path, profile or "default", true)
  if kind == "unreadable" then return nil, format("%s names %s, which cannot be read: %s", ENV.file, path, err) end
  if kind == "absent" then return nil, format("%s names %s, which does not exist", ENV.file, path) end
  if s or err then return s, err, path end
  if profile then return nil, format("%s is not in %s (named by %s)", named.what, path, ENV.file) end
  return nil, format("%s names %s, which has no profile [default]", ENV.file, path)
end

-- Nothing named but a profile, or nothing at all: the profile files at
-- their places (aliyun-cli's first), then an ECS instance's role.
local function from_home(opts, getenv, profile, named)
  local read, home = opts.read, opts.home
  local name = profile or "default"
  local cli_file = home and not is_true(getenv(ENV.cli_disabled)) and home .. "/.aliyun/config.json" or nil
  local file = home and home .. "/.alibabacloud/credentials" or nil
  if cli_file then
    local s, err = from_cli_config(read, cli_file, name, profile ~= nil)
    if s or err then return s, err, cli_file end
  end
  if file then
    local s, err = from_credentials_file(read, opts.parse_ini, file, name, profile ~= nil)
    if s or err then return s, err, file end
  end
  local looked = {}
  if named then
    -- (a profile named and found nowhere: never another identity in its place)
    looked[#looked + 1] = cli_file
    looked[#looked + 1] = file
    return nil, format("%s is not in %s", named.what, #looked > 0 and concat(looked, " or ")
      or "any profile file") -- (streamctl.credentials adds why: HOME is not set)
  end
  if not is_true(getenv(ENV.ecs_disabled)) and on_ecs(read, getenv) then return ecs_source(getenv) end
  local message = format("no Alibaba Cloud credentials: set %s and %s", ENV.id, ENV.secret)
  looked[#looked + 1] = file
  looked[#looked + 1] = cli_file
  if #looked > 0 then message = format("%s, or add profile [%s] to %s", message, name, concat(looked, " or ")) end
  return nil, message
end

--- The source the chain picks (see above).
-- @tparam table opts `{ profile =, getenv =, home =, read =, parse_ini = }`: the
--   profile (the command's --profile), and for the file readers and tests:
--   getenv, the home directory (nil: none, so no file under it), read(path)
--   -> text | nil | nil, err, and the INI parser
-- @return the source, or nil and why (no source: naming the files looked at);
--   then the profile file it came from, if it did (for a permissions warning)
function M.resolve(opts)
  local getenv = opts.getenv
  local named, why, profile, file = named_sources(opts, getenv)
  if not named then return nil, why end
  if #named > 1 then
    -- (two identities named: the official chain would take the first in its order; streamctl refuses)
    return nil, format("%s and %s both name credentials: unset one of them", named[1].what, named[2].what)
  end
  local one = named[1]
  if one and one.source then return one.source end
  if one and one.kind == "ecs" then return ecs_source(getenv) end
  if one and one.kind == "uri" then
    return { type = "credentials_uri", from = "environment (" .. ENV.uri .. ")", uri = getenv(ENV.uri) }
  end
  if file then return from_named_file(opts.read, opts.parse_ini, file, profile, one) end
  return from_home(opts, getenv, profile, one)
end

return M
