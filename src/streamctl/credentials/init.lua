--- Where credentials come from when they are not passed: the providers'
-- environment variables, then profile files, the way their own tools read them.
--
-- Alibaba Cloud: the official credential chain, in its order (the
-- environment's keys, OIDC, aliyun-cli's ~/.aliyun/config.json, the shared
-- ~/.alibabacloud/credentials, the ECS instance's role, a credentials URI),
-- written in streamctl.credentials.aliyun with where streamctl is stricter.
-- The sources that give temporary credentials by a role (RAM role ARN, OIDC,
-- ECS, URI) give a holder that renews them (`holder`, streamctl.credentials.refresh).
--
-- ZEGO: ZEGO_APP_ID and ZEGO_SERVER_SECRET, then streamctl's own file,
-- ~/.config/streamctl/config (or $XDG_CONFIG_HOME/streamctl/config):
--
--   [zego]                       # the default profile
--   app_id = 1234567890
--   server_secret = 0123...
--   [zego.staging]               # --profile staging
--   ...
--   [defaults]                   # the command line's defaults
--   output = json
--   concurrency = 16
--   timeout_ms = 5000
--   ca_file = /etc/ssl/my-ca.pem
--
-- Both INI files are read in one dialect (see `parse_ini`): `;` and `#`
-- comments on lines of their own or after a [section], a key once per
-- section, and no comment after a value (quote a value that holds " ;").
-- A section or key a file does not hold (OWN_KEYS here; the credentials
-- file's in streamctl.credentials.aliyun) is an error naming the line and
-- the nearest name, never a setting silently not made.
-- Without a home directory (HOME unset or empty, as under cron's `env -i`)
-- no file under it is looked for; the "no credentials" message says so.
--
-- Each function returns the credentials as the client's options (so they
-- can be handed to `new` as they are), or nil and an error object (code
-- "MissingCredentials", kind "auth"; its message names the variable, file
-- or line to fix); then an array of warnings (a file others can read) and where they were found
-- ("environment", or the file and profile). A malformed file is an error
-- naming the file and the line; a file that is missing is skipped. No secret
-- is ever put into a message.
--
--   local creds, err, warnings, source = streamctl.credentials.aliyun { profile = "prod" }
--   local ali = assert(streamctl.aliyun.new(assert(creds, err and err.message)))
-- @module streamctl.credentials

local core = require "streamctl.core"
local errors = require "streamctl.base.errors"
local ini = require "streamctl.credentials.ini"
local key_options = require "streamctl.pipeline.keys"

local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring
local format, match, find, sub = string.format, string.match, string.find, string.sub

local M = {}

-- The INI dialect both profile files are read in (streamctl.credentials.ini).
M.BOM, M.parse_ini, M.unknown_names = ini.BOM, ini.parse_ini, ini.unknown_names

-- The chains below say why they found nothing in words; the functions of
-- the module hand that on as an error object (the library's one shape).
local aliyun_credentials, zego_credentials
local function with_error_object(provider, c, why, warnings, source)
  if c then return c, nil, warnings, source end
  return nil, errors.new { provider = provider, code = "MissingCredentials", kind = "auth", message = why }, warnings
end

-- Reads a whole file: its text, or nil when it does not exist, or nil and
-- an error when it exists but cannot be read or is not a file (a
-- directory, a FIFO: never read, never taken for an empty file).
local function read(path)
  local text, why, kind = core.read_file(path)
  if text then return text end
  if kind == "absent" then return nil end
  return nil, why
end

-- `read`, but for the files in `opts.pending` (`{ [path] = text }`): read
-- as that text (the files as `streamctl configure` would write them, for the
-- chain to say what it would read then).
local function reader(opts)
  local pending = opts.pending
  if not pending then return read end
  return function(path)
    if pending[path] then return pending[path] end
    return read(path)
  end
end

-- A warning when `path` can be read by its group or others.
local function permissions_warning(path)
  local ok, lfs = pcall(require, "lfs")
  if not ok then return nil end
  local perms = lfs.attributes(path, "permissions")
  if type(perms) == "string" and find(sub(perms, 4), "r", 1, true) then
    return format("%s can be read by other users (%s); run: chmod 600 %s", path, perms, path)
  end
  return nil
end

-- The home directory: `opts.home`, else $HOME; nil when it is unset or
-- empty (cron's `env -i`), so that no profile file is looked for under "/".
local function home(opts)
  local getenv = opts.getenv or os.getenv
  local dir = opts.home or getenv("HOME")
  if dir == "" then return nil end
  return dir
end

-- Said in a "no credentials" message when the home directory is unknown.
local NO_HOME = " (HOME is not set: profile files under it were not read)"

-- Checks that `c`'s strings are usable: the first rule broken, or nil.
local function missing(c, keys, where)
  for _, k in ipairs(keys) do
    if type(c[k]) ~= "string" or c[k] == "" then return format("%s has no %s", where, k) end
  end
  return nil
end

--- Alibaba Cloud credentials: the source the official chain picks
-- (`streamctl.credentials.aliyun` the module: its order, and where streamctl
-- is stricter), as a client's options.
-- @tparam[opt] table opts `{ profile =, ca_file =, proxy =, shared_dict =, clock =, getenv =, home =,
--   pending =, on_attempt = }` (getenv and home: for tests; pending: files read as given text, `{ [path] = text }`,
--   for `streamctl configure`; the others: see `holder`)
-- @return `{ access_key_id, access_key_secret, security_token }`, or nil and
--   the error object; the warnings; the source
function M.aliyun(opts)
  if opts ~= nil and opts.clock ~= nil and type(opts.clock) ~= "function" then
    error("bad argument #1 to 'aliyun' (opts.clock must be a function)", 2)
  end
  return with_error_object("aliyun", aliyun_credentials(opts))
end

-- (M.aliyun without the error object)
aliyun_credentials = function(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local warnings = {}
  local dir = home(opts)
  local source, err, file = require("streamctl.credentials.aliyun").resolve {
    profile = opts.profile, getenv = getenv, home = dir, read = reader(opts), parse_ini = M.parse_ini }
  if not source then
    local looked_for = find(err, "^no Alibaba Cloud credentials") or find(err, "%(named by [^)]*%) is not in ")
    return nil, err .. ((dir or not looked_for) and "" or NO_HOME), warnings
  end
  if file then warnings[#warnings + 1] = permissions_warning(file) end
  if source.type == "access_key" or source.type == "sts" then
    return { access_key_id = source.access_key_id, access_key_secret = source.access_key_secret,
             security_token = source.security_token }, nil, warnings, source.from
  end
  local holder, why = M.holder(source, { getenv = getenv, ca_file = opts.ca_file, proxy = opts.proxy,
                                         shared_dict = opts.shared_dict, clock = opts.clock,
                                         credentials_cache = opts.credentials_cache, warn = opts.warn,
                                         on_attempt = opts.on_attempt, deadline_ms = opts.deadline_ms })
  if not holder then return nil, why, warnings end
  return { credentials = holder }, nil, warnings, source.from
end

local ask_identity -- (defined below)

-- Where STS is for `source`: its sts_endpoint, else ALIBABA_CLOUD_STS_ENDPOINT
-- (as aliyun-cli), else the region's (sts-vpc.<region> with enable_vpc), else
-- sts.aliyuncs.com, as the official SDKs build it.
local function sts_endpoint(source, getenv)
  local e = source.sts_endpoint or getenv("ALIBABA_CLOUD_STS_ENDPOINT")
  if e and e ~= "" then return find(e, "^https?://") and e or "https://" .. e end
  local region = source.sts_region or getenv("ALIBABA_CLOUD_STS_REGION")
  if region and region ~= "" then
    return format("https://sts%s.%s.aliyuncs.com", source.enable_vpc and "-vpc" or "", region)
  end
  return "https://sts.aliyuncs.com"
end

-- A client of STS signing with `source`'s keys (a role's own source: keys,
-- or another role's holder), or none (AssumeRoleWithOIDC is anonymous).
local NO_KEYS = { get = function() return nil, "AssumeRoleWithOIDC is sent unsigned" end }
local function sts_client(source, opts, getenv)
  local o = { endpoint = sts_endpoint(source, getenv), ca_file = opts.ca_file, proxy = opts.proxy,
              on_attempt = opts.on_attempt }
  local keys = source.source
  if not keys then
    o.credentials = NO_KEYS
  elseif keys.type == "access_key" or keys.type == "sts" then
    o.access_key_id, o.access_key_secret, o.security_token = keys.access_key_id, keys.access_key_secret,
      keys.security_token
  else
    local inner, why = M.holder(keys, opts)
    if not inner then return nil, why end
    o.credentials = inner
  end
  local c, err = require("streamctl.credentials.sts").new(o)
  if not c then return nil, format("%s: %s", source.from, tostring(err)) end
  return c
end

-- A fetch for a role assumed through STS (ram_role_arn, oidc_role_arn).
local function sts_fetch(source, opts, getenv)
  local sts, why = sts_client(source, opts, getenv)
  if not sts then return nil, why end
  local function session()
    return source.role_session_name or format("streamctl-%d", math.floor(core.now() * 1000))
  end
  if source.type == "ram_role_arn" then
    return function()
      local res, err = sts:assume_role { role_arn = source.role_arn, role_session_name = session(),
        duration_seconds = source.duration_seconds, policy = source.policy, external_id = source.external_id }
      return require("streamctl.credentials.sts").credentials_of(res, err, sts.server_skew)
    end
  end
  return function()
    -- the token file is read at every renewal: Kubernetes rotates it
    local token, rerr = read(source.oidc_token_file)
    if not token or token == "" then
      return nil, format("the OIDC token file %s cannot be read%s", source.oidc_token_file,
        rerr and " (" .. rerr .. ")" or " (missing or empty)")
    end
    local res, err = sts:assume_role_with_oidc { role_arn = source.role_arn, role_session_name = session(),
      oidc_provider_arn = source.oidc_provider_arn, oidc_token = (token:gsub("%s+$", "")),
      duration_seconds = source.duration_seconds, policy = source.policy }
    return require("streamctl.credentials.sts").credentials_of(res, err, sts.server_skew)
  end
end

-- The credentials cache's key of `source` (streamctl.credentials.cache's key_of, with where its STS is).
local function cache_key(source, getenv, imds_base)
  return require("streamctl.credentials.cache").key_of(source, function(src) return sts_endpoint(src, getenv) end,
    imds_base)
end

--- A holder (streamctl.credentials.refresh) that keeps `source`'s temporary
-- credentials current: a role assumed through STS (its keys, another role,
-- or an OIDC token), the ECS instance's role, a credentials URI. Its
-- `account_id` is the UID in a role's ARN. STREAMCTL_TEST_IMDS_ENDPOINT, for
-- tests only, stands in for the metadata service's address
-- (100.100.100.200), which no test may reach.
-- @param source from streamctl.credentials.aliyun.resolve
-- @tparam[opt] table opts `{ getenv =, ca_file =, proxy =, shared_dict =, clock =, credentials_cache =,
--   warn =, on_attempt = }` (on_attempt: told of each of STS's attempts, as a client's is;
--   credentials_cache: false, or a directory; default: the cache's own, outside nginx when
--   no shared_dict is given: streamctl.credentials.cache; warn(text): where the cache's findings are
--   said, default standard error; ca_file, proxy:
--   for STS and a credentials URI, as the client's, never for the metadata service; shared_dict:
--   inside nginx, the lua_shared_dict through which every worker shares the credentials and
--   renews them once; clock: Unix seconds, by which they are stale or expired, default the
--   system's: give the client the same one)
function M.holder(source, opts)
  opts = opts or {}
  if opts.clock ~= nil and type(opts.clock) ~= "function" then
    error("bad argument #2 to 'holder' (opts.clock must be a function)", 2)
  end
  local getenv = opts.getenv or os.getenv
  local sources = require "streamctl.credentials.sources"
  local refresh = require "streamctl.credentials.refresh"
  -- A holder of `fetch`'s credentials, named `name`; shared by the workers when a dict is given,
  -- else by the processes of this user through the credentials cache (keyed by `key`).
  local function holder(name, fetch, account_id, key)
    local shared
    if opts.shared_dict then
      local why
      shared, why = require("streamctl.pipeline.stores").credentials("shared_dict", opts.shared_dict, name)
      if not shared then return nil, "option 'shared_dict' " .. why end
    else
      shared = require("streamctl.credentials.cache").store_for(opts, getenv, key)
    end
    return refresh.new { source = name, fetch = fetch, account_id = account_id, shared = shared,
                         clock = opts.clock, sleep = require("streamctl.transport.auto").sleep }
  end
  if source.type == "ram_role_arn" or source.type == "oidc_role_arn" then
    local fetch, why = sts_fetch(source, opts, getenv)
    if not fetch then return nil, why end
    return holder(format("%s (%s)", source.from, source.role_arn), fetch,
      match(source.role_arn or "", "^acs:ram::(%d+):role/"), cache_key(source, getenv))
  end
  local imds = source.type == "ecs_ram_role"
  local exchange, err = sources.exchange {
    timeout_ms = imds and sources.IMDS_TIMEOUT_MS or sources.URI_TIMEOUT_MS,
    connect_timeout_ms = imds and sources.IMDS_CONNECT_TIMEOUT_MS or sources.URI_CONNECT_TIMEOUT_MS,
    ca_file = (not imds) and opts.ca_file or nil,
    proxy = (not imds) and opts.proxy or nil, -- (the metadata service is never reached through a proxy)
  }
  if not exchange then return nil, tostring(err) end
  local base = getenv("STREAMCTL_TEST_IMDS_ENDPOINT")
  local fetch = sources.fetcher(source, exchange, base ~= "" and base or nil)
  local name = source.from
  if imds and source.role_name then name = format("%s (%s)", name, source.role_name) end
  return holder(name, fetch, nil, cache_key(source, getenv, base))
end

--- Who a set of Alibaba Cloud credentials is: STS GetCallerIdentity asked
-- with them (no permission needed). Never shows a secret.
-- @tparam table creds a client's credential options: `{ access_key_id,
--   access_key_secret, security_token }` or `{ credentials = holder }` (as
--   `aliyun` gives them)
-- @tparam[opt] table opts `{ sts_endpoint =, ca_file =, proxy =, getenv =, on_attempt = }`: STS
--   (default: $ALIBABA_CLOUD_STS_ENDPOINT, else https://sts.aliyuncs.com)
-- @return `{ account_id, identity_type, arn, principal_id, user_id, role_id,
--   request_id }`, or nil and an error
function M.identity(creds, opts)
  opts = opts or {}
  -- (temporary credentials cached for the user: their identity too: streamctl.credentials.cache)
  local holder = creds.credentials
  if type(holder) == "table" and holder._shared and holder._shared.identity then
    return require("streamctl.credentials.cache").identity_of(holder, function() return ask_identity(creds, opts) end)
  end
  return ask_identity(creds, opts)
end

-- (M.identity without the cache)
function ask_identity(creds, opts)
  local getenv = opts.getenv or os.getenv
  local o = { endpoint = sts_endpoint({ sts_endpoint = opts.sts_endpoint }, getenv), ca_file = opts.ca_file,
              proxy = opts.proxy, on_attempt = opts.on_attempt,
              credentials = creds.credentials, access_key_id = creds.access_key_id,
              access_key_secret = creds.access_key_secret, security_token = creds.security_token }
  local sts, err = require("streamctl.credentials.sts").new(o)
  if not sts then return nil, err end
  local res, cerr = sts:get_caller_identity {}
  sts:close()
  if not res then return nil, cerr end
  return { account_id = res.AccountId, identity_type = res.IdentityType, arn = res.Arn,
           principal_id = res.PrincipalId, user_id = res.UserId, role_id = res.RoleId, request_id = res.RequestId }
end

--- The value of environment variable `name`, nil when it is unset or
-- empty: streamctl.pipeline.keys' `variable`.
M.variable = key_options.variable

--- The path of streamctl's own file: $XDG_CONFIG_HOME/streamctl/config,
-- else ~/.config/streamctl/config; nil when there is neither (XDG_CONFIG_HOME
-- unset, empty or relative, which the XDG spec says to ignore, and HOME
-- unset or empty).
function M.config_path(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local xdg = getenv("XDG_CONFIG_HOME")
  if not (xdg and find(xdg, "^/")) then
    local dir = home(opts)
    if not dir then return nil end
    xdg = dir .. "/.config"
  end
  return xdg .. "/streamctl/config"
end

--- Where the chain reads a provider's profile from, found as the chain
-- finds it, so that `streamctl configure` writes exactly there. Alibaba
-- Cloud: section `opts.profile`, else $ALIBABA_CLOUD_PROFILE, else
-- [default], of $ALIBABA_CLOUD_CREDENTIALS_FILE, else
-- ~/.alibabacloud/credentials; ZEGO: [zego] or [zego.NAME] of `config_path`.
-- (Whether a source before it comes first is the chain's to say: ask it.)
-- @tparam string provider "aliyun" or "zego"
-- @tparam[opt] table opts `{ profile =, getenv =, home = }`
-- @return `{ path =, section =, own_dir =, named_by = }` (own_dir: the
--   directory streamctl's layout gives the file, nil for a file a variable
--   names; named_by: the variable that named the section), or nil and why
function M.profile_file(provider, opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local profile = opts.profile ~= "" and opts.profile or nil
  if provider == "zego" then
    local path = M.config_path(opts)
    if not path then
      return nil, "HOME is not set, nor XDG_CONFIG_HOME (an absolute path): there is no file to write the profile into"
    end
    return { path = path, section = profile and "zego." .. profile or "zego", own_dir = match(path, "^(.*)/config$") }
  end
  local ENV = require("streamctl.credentials.aliyun").ENV
  local named_by
  if not profile and M.variable(ENV.profile, getenv) then profile, named_by = getenv(ENV.profile), ENV.profile end
  local t = { section = profile or "default", named_by = named_by, path = M.variable(ENV.file, getenv) }
  if not t.path then
    local dir = home(opts)
    if not dir then
      return nil, format("HOME is not set, nor %s: there is no file to write the profile into", ENV.file)
    end
    t.path, t.own_dir = dir .. "/.alibabacloud/credentials", dir .. "/.alibabacloud"
  end
  return t
end

--- The keys of streamctl's own file, by section: `[zego]` and each
-- `[zego.NAME]` (a profile) hold the credentials; `[defaults]` the command
-- line's defaults (each the flag's: `timeout_ms` is --timeout, `max_rate`
-- --rate). No other section or key is read, so none other is taken: a
-- typo (`max-forbid`, `[Defaults]`) is an error naming the file, the line
-- and the nearest name, never a setting silently left at its default.
M.OWN_KEYS = {
  zego = { "app_id", "server_secret" },
  defaults = { "output", "concurrency", "timeout_ms", "max_rate", "ca_file", "max_forbid", "max_resume",
               "metrics_file", "trace_timeout_ms" },
}

-- The keys of a section of streamctl's own file, or nil for a section it does not have.
local function own_keys(name)
  if name == "defaults" or name == "zego" then return M.OWN_KEYS[name] end
  if sub(name, 1, 5) == "zego." and #name > 5 then return M.OWN_KEYS.zego end
  return nil
end

-- streamctl's file, parsed and checked: sections, or nil (missing, or no
-- path for it), or nil and an error; and its path.
local function own_file(opts, warnings)
  local path = M.config_path(opts)
  if not path then return nil end
  local text, err = reader(opts)(path)
  if not text then return nil, err, path end
  local sections, perr = M.parse_ini(text, path, own_keys, { "zego", "defaults" })
  if not sections then return nil, perr, path end
  warnings[#warnings + 1] = permissions_warning(path)
  return sections, nil, path
end

--- ZEGO credentials (see above).
-- @tparam[opt] table opts `{ profile =, getenv =, home =, pending = }` (as `aliyun`'s)
-- @return `{ app_id, server_secret }`, or nil and the error object; the
--   warnings; the source
function M.zego(opts)
  return with_error_object("zego", zego_credentials(opts))
end

zego_credentials = function(opts)
  opts = opts or {}
  local getenv = opts.getenv or os.getenv
  local warnings = {}
  local app, secret = key_options.env_pair(getenv, key_options.VARIABLES.zego[1][2], key_options.VARIABLES.zego[2][2])
  if not app and secret then return nil, secret, warnings end
  if app and opts.profile and opts.profile ~= "" then
    -- (two identities named: streamctl refuses rather than pick one)
    return nil, format("profile '%s' (named by the profile option, --profile) and the environment (%s) both name "
      .. "credentials: unset one of them", opts.profile, key_options.VARIABLES.zego[1][2]), warnings
  end
  if app then
    return { app_id = app, server_secret = secret }, nil, warnings, "environment"
  end
  local sections, err, path = own_file(opts, warnings)
  if err then return nil, err, warnings end
  local name = (opts.profile and opts.profile ~= "") and ("zego." .. opts.profile) or "zego"
  local s = sections and sections[name]
  if not s then
    if not path then return nil, "no ZEGO credentials: set ZEGO_APP_ID and ZEGO_SERVER_SECRET" .. NO_HOME, warnings end
    return nil, format("no ZEGO credentials: set ZEGO_APP_ID and ZEGO_SERVER_SECRET, or add [%s] to %s",
      name, path), warnings
  end
  local where = format("%s:%d: [%s]", path, s._line, name)
  local why = missing(s, { "app_id", "server_secret" }, where)
  if why then return nil, why, warnings end
  return { app_id = s.app_id, server_secret = s.server_secret }, nil, warnings, format("%s [%s]", path, name)
end

--- A client's credential options, from its options or the environment:
-- streamctl.pipeline.keys' `from_options` (here for callers of this module),
-- for `provider` ("aliyun", "zego", or a provider's own `variables` list).
function M.client_options(provider, ...)
  return key_options.from_options(type(provider) == "string" and key_options.VARIABLES[provider] or provider, ...)
end

-- The command line's settings that the environment may give, by option.
-- (a provider without an entry: the settings every provider's command takes)
local COMMON = { { "redis", "STREAMCTL_REDIS_URL" } }
local SETTINGS = {
  aliyun = { COMMON[1], { "account_id", "ALIBABA_CLOUD_ACCOUNT_ID" } },
  zego = COMMON,
}

--- The command line's settings from the environment (beside the
-- credentials): `redis` from $STREAMCTL_REDIS_URL, and for Alibaba Cloud
-- `account_id` from $ALIBABA_CLOUD_ACCOUNT_ID. Unchecked: the caller checks
-- each by its option's rule and names the variable.
-- @tparam string provider "aliyun" or "zego" (another: the common ones, `redis`)
-- @tparam[opt] table opts `{ getenv = }` (for tests)
-- @return an array of `{ option =, value =, variable = }`, one for each set and not empty
function M.settings(provider, opts)
  local getenv = (opts and opts.getenv) or os.getenv
  local out = {}
  for _, s in ipairs(SETTINGS[provider] or COMMON) do
    local value = getenv(s[2])
    if value and value ~= "" then out[#out + 1] = { option = s[1], value = value, variable = s[2] } end
  end
  return out
end

--- The [defaults] section of streamctl's file: a table of strings (empty
-- when there is none) and, for each key, "path:line" where it is set; or
-- nil and an error; and the warnings.
function M.defaults(opts)
  local warnings = {}
  local sections, err, path = own_file(opts or {}, warnings)
  if err then return nil, err, warnings end
  local out, where = {}, {}
  local s = sections and sections.defaults
  if s then
    for k, v in pairs(s) do
      if k ~= "_line" and k ~= "_lines" then out[k], where[k] = v, path .. ":" .. s._lines[k] end
    end
  end
  return out, where, warnings
end

return M
