--- The command's side of Alibaba Cloud ApsaraVideo Live (streamctl.aliyun):
-- its credential flags and chain, the region aliyun-cli users bring, the
-- block list's places read before a forbid batch, `reconcile`, `whoami`
-- and `configure`. The table's keys: streamctl.cli.provider.
-- @module streamctl.cli.providers.aliyun

local aliyun = require "streamctl.aliyun"
local credentials = require "streamctl.credentials"
local cli_output = require "streamctl.cli.output"

local ipairs, tonumber, format, find, concat = ipairs, tonumber, string.format, string.find, table.concat

local M = {
  title = "Alibaba Cloud ApsaraVideo Live",
  example = "streamctl aliyun resume-live-stream --domain-name push.example.com --app-name live "
    .. "--stream-name match-7",
  call_example = "DescribeLiveStreamsBlockList DomainName=push.example.com PageSize=100",
  list = { noun = "names", metavar = "STREAM", example = "match-1 match-2" },
  emulator = { port = "aliyun_tls", account = "ALIYUN" },
  keys = { "access_key_id", "access_key_secret", "security_token" }, -- the id, the secret, the rest
  credentials = {
    title = "Credentials (default: ALIBABA_CLOUD_* variables, then ~/.aliyun/config.json, then "
      .. "~/.alibabacloud/credentials)",
    flags = {
      { "--access-key-id", "AccessKey ID.", "<id>" },
      { "--access-key-secret", "AccessKey secret (visible to other users in ps: prefer the environment or a "
        .. "profile file).", "<secret>" },
      { "--security-token", "STS security token, with --access-key-id and --access-key-secret (alone: "
        .. "refused).", "<token>" },
      { "--profile", "Profile in the credentials files (default: $ALIBABA_CLOUD_PROFILE or 'default').",
        "<name>" },
      { "--signature-version", "Request signature: v3 (ACS3-HMAC-SHA256) or v1 (HMAC-SHA1).",
        choices = { "v3", "v1" } },
      { "--no-credentials-cache", "Keep a role's temporary credentials to this run (default: shared with the "
        .. "runs after it in $XDG_CACHE_HOME/streamctl/credentials or ~/.cache/streamctl/credentials, or "
        .. "$STREAMCTL_CREDENTIALS_CACHE).", flag = true },
      { "--account-id", "The account's UID (decimal digits): the rate-limit budget is the account's, shared by "
        .. "all its AccessKeys and STS sessions (default: $ALIBABA_CLOUD_ACCOUNT_ID; without it, a role's ARN, "
        .. "else, with --redis, STS GetCallerIdentity asked once).", "<uid>" },
    },
  },
  options = { "signature_version", "account_id" },
  chain = credentials.aliyun,
  setting_rules = { account_id = aliyun.account_id_rule },
  whoami = {
    flags = { { "--sts-endpoint", "STS, https://host[:port] (default: $ALIBABA_CLOUD_STS_ENDPOINT, else "
      .. "https://sts.$ALIBABA_CLOUD_STS_REGION.aliyuncs.com, else https://sts.aliyuncs.com, the first set "
      .. "winning; with --emulator, the emulator's).", "<url>" } },
  },
}

--- Who the credentials are: STS GetCallerIdentity (streamctl.credentials.identity).
-- An STS option a message names (STS's client's `endpoint`) said as where it came from.
function M.whoami.identity(opts, args, getenv)
  local sts = args.sts_endpoint or (args.emulator and opts.endpoint) or nil
  local who, err = credentials.identity(opts, { sts_endpoint = sts, ca_file = opts.ca_file, proxy = opts.proxy,
                                                getenv = getenv, on_attempt = args._debug })
  if not who and type(err) == "table" and type(err.message) == "string" then
    local variable = ((getenv or os.getenv)("ALIBABA_CLOUD_STS_ENDPOINT") or "") ~= "" and "ALIBABA_CLOUD_STS_ENDPOINT"
      or "ALIBABA_CLOUD_STS_REGION"
    err.message = err.message:gsub("option 'endpoint'", args.sts_endpoint and "'--sts-endpoint'"
      or sts and "'--emulator'" or "environment variable " .. variable)
  end
  return who, err
end

-- aliyun-cli's --region: where ApsaraVideo Live has none, what stands for it.
function M.unknown_option(typed)
  if typed ~= "--region" and typed ~= "--region-id" then return nil end
  return ": ApsaraVideo Live answers every region at one endpoint, live.aliyuncs.com (--endpoint URL for "
    .. "another); the pull-to-push commands take --region as a field of their own, and the forbids --region-id"
end

--- aliyun-cli's ALIBABA_CLOUD_REGION_ID, as it takes it: the Region of a
-- command that has one (--region of the pull-to-push family, --region-id of
-- the others that take it) when none is given by a flag; a value its field
-- refuses is said naming the variable. ApsaraVideo Live's endpoint is one
-- for every region, so it never chooses the endpoint. The message, or nil.
function M.fill(m, fields, getenv)
  local region = getenv("ALIBABA_CLOUD_REGION_ID")
  -- (a region given by a flag is the run's: the variable fills none of the others then)
  if not region or region == "" or fields.region ~= nil or fields.region_id ~= nil then return nil end
  for _, f in ipairs(m.fields) do
    if (f.name == "region" or f.name == "region_id") and fields[f.name] == nil then
      local ok, rule = not f.enum, nil
      for _, v in ipairs(f.enum or {}) do ok = ok or v == region end
      if not ok then rule = "must be one of " .. concat(f.enum, ", ") end
      -- (a region ID's shape, its field's rule: 'cn hangzhou' is never sent as cn%20hangzhou)
      if ok and f.check then ok, rule = f.check(region) end
      if not ok then
        return format("environment variable ALIBABA_CLOUD_REGION_ID (for %s) %s (got '%s')", cli_output.flag(f.name),
          rule, region)
      end
      fields[f.name] = region
    end
  end
  return nil
end

--- The block list's places as a forbid batch left them (streamctl.aliyun.places.after): `places`,
-- the preflight's, and the batch's report.
function M.places_after(places, report) return require("streamctl.aliyun.places").after(places, report) end

--- Before a forbid batch (not oneshot), once its fields are checked and
-- before its intent: the block list's places in use are read (every domain
-- of the account: streamctl.aliyun.places) and a run that needs more than
-- are left sends nothing. A list read whole needs a place for each stream
-- not listed yet; one read as it goes, for each name it holds (counted,
-- not kept). False: nothing to check; the room; or nil and what to say.
function M.preflight(client, m, fields, long)
  if not (m.action == "ForbidLiveStream" and m.list) then return false end
  if fields.oneshot == "yes" or fields.oneshot == true then return false end
  local places = require "streamctl.aliyun.places"
  local limit = tonumber(fields.places_limit) or places.LIMIT
  local room, err
  if long then
    local use
    use, err = places.in_use(client, { domains = { fields.domain_name } })
    if use then
      room = { used = use.used, limit = limit, needed = long.count or long.count_at_least, domains = use.domains }
      if room.used + room.needed > limit then room, err = nil, places.refusal(m.action, room) end
    end
  else
    room, err = places.check_batch(client, { domain_name = fields.domain_name, app_name = fields.app_name,
                                             stream_names = fields[m.list], places_limit = limit })
  end
  if room then return room end
  if err.code == "BlockListFull" then
    return nil, { refused = true, code = err.code, places = err.places, said = "refused: " .. err.message
      .. ". Pass --places-limit N where the account's quota is larger, or --oneshot yes to cut the streams "
      .. "without listing them." }
  end
  return nil, { code = err.code, said = format("the block list's places could not be read (%s): nothing was sent",
    tostring(err)) }
end

M.reconcile = {
  what = "Makes the block list hold the streams of a desired state: reads every page of "
    .. "DescribeLiveStreamsBlockList of each domain, forbids the desired streams it lacks, and with "
    .. "--remove-extra resumes the blocked streams not desired (default: reported and left).",
  from = "The desired state: one stream a line, domain/app/stream ('-': standard input; blank lines and "
    .. "lines starting with # skipped; a # after a name is refused, not a comment; every name checked as "
    .. "the forbid checks it, the whole list before anything is read or sent), or a JSON array of "
    .. "{domain_name, app_name, stream_name}.",
  example = "streamctl aliyun reconcile --from blocked.txt --dry-run",
  man = "(the block list is read first)",
  empty = "in the domains named by --domain-name",
  flags = {
    { "--domain-name", "Also read this domain's block list (repeat for more): its blocked streams are extras.",
      "<domain>", count = "*" },
    { "--resume-time", "The forbids last until this time (YYYY-MM-DDThh:mm:ssZ, Unix seconds, or a duration from "
      .. "now: +2h, 90m, 1h30m, 2d; default: the "
      .. "provider ends them 6 months after each forbid, and a later round forbids them again).", "<time>" },
    { "--places-limit", "The account's block-list places, where its quota differs (decimal digits; default "
      .. "10000: the ForbidLiveStream page). The places in use, over every domain of the account, are read "
      .. "before the forbids, and a round that needs more than are left sends nothing.", "<n>" },
  },
}

-- The reconciler's options from the flags.
function M.reconcile.options(args, opts, time_of)
  opts.domains = (args.domain_name and #args.domain_name > 0) and args.domain_name or nil
  opts.resume_time = time_of(args.resume_time)
  -- (decimal digits, or the text as given: the reconciler refuses it naming --places-limit)
  opts.places_limit = args.places_limit and (find(args.places_limit, "^%d+$") and tonumber(args.places_limit)
    or args.places_limit) or nil
end

-- The action that changes a reconcile's stream one way or the other.
function M.reconcile.action(_, forbid)
  return forbid and "ForbidLiveStream" or "ResumeLiveStream"
end

M.configure = {
  says = "Alibaba Cloud's AccessKey into ~/.alibabacloud/credentials, or the file ALIBABA_CLOUD_CREDENTIALS_FILE "
    .. "names ([default], or [NAME] with --profile NAME or ALIBABA_CLOUD_PROFILE)",
  file = "/.alibabacloud/credentials",
  section = function(profile) return profile or "default" end,
  keys = {
    { key = "access_key_id", prompt = "AccessKey ID" },
    { key = "access_key_secret", prompt = "AccessKey secret", secret = true },
  },
  fixed = { type = "access_key" }, -- (the shared file's kind of profile: keys)
}

-- A profile configure may not overwrite: a role's; or may not write into:
-- one turned off (the chain skips it: what is written would not be read).
function M.configure.check(current, name, path)
  if current.enable and string.lower(current.enable) == "false" then
    return format("%s:%d: [%s] is turned off (enable = false), so the credential chain skips it: remove that line "
      .. "first, or name another --profile", path, current._lines.enable, name)
  end
  if current.type and string.lower(current.type) ~= "access_key" then
    return format("[%s] in %s is a profile of type %s: configure writes AccessKeys only; edit the file for a role "
      .. "(docs/credentials.md), or name another --profile", name, path, tostring(current.type))
  end
  return nil
end

return M
