--- The keys a client signs with, from its options or, none given, the
-- providers' environment variables: the part of finding credentials the
-- client itself does when it is made. The rest of the chain (profile
-- files, roles through STS, the instance's role) is streamctl.credentials',
-- which sits above the clients it makes (an STS client among them).
-- @module streamctl.pipeline.keys

local ipairs, format = ipairs, string.format

local M = {}

--- The environment variables each provider's credential options come from
-- (the two that go together first, then an optional one), as the
-- providers' own tools name them.
M.VARIABLES = {
  aliyun = { { "access_key_id", "ALIBABA_CLOUD_ACCESS_KEY_ID" },
             { "access_key_secret", "ALIBABA_CLOUD_ACCESS_KEY_SECRET" },
             { "security_token", "ALIBABA_CLOUD_SECURITY_TOKEN" } },
  zego = { { "app_id", "ZEGO_APP_ID" }, { "server_secret", "ZEGO_SERVER_SECRET" } },
}
M.VARIABLES.sts = M.VARIABLES.aliyun -- (Alibaba Cloud's STS: the same keys)

--- The variables `a` and `b`, which go together: both values; nil when
-- neither is set; or nil and which one is missing.
function M.env_pair(getenv, a, b)
  local x, y = getenv(a), getenv(b)
  if x == "" then x = nil end
  if y == "" then y = nil end
  if not x and not y then return nil end
  if not x then return nil, b .. " is set but " .. a .. " is not" end
  if not y then return nil, a .. " is set but " .. b .. " is not" end
  return x, y
end

--- A client's credential options: those it was given, else (none given)
-- the provider's environment variables, read when the client is made (so a
-- caller can isolate the environment). The sources are never mixed: with
-- any credential option given, the environment is not read, and the pair
-- must be complete; from the environment, a half-set pair is refused as
-- `aliyun` and `zego` refuse it. A value from the environment obeys the
-- option's own rule, and the message names the variable.
-- @tparam table vars the provider's credential options and their variables (its rules'
--   `variables`: `{ { option, VARIABLE }, ... }`, the pair that goes together first)
-- @tparam table o the client's checked options (not changed)
-- @tparam function check `check(option, value) -> value | nil, rule`: the option's rule
-- @tparam[opt] function getenv (for tests; default os.getenv)
-- @return `{ option = value }` for the provider's credential options, or nil, message and
--   "MissingCredentials" when one is missing
function M.from_options(vars, o, check, getenv)
  if o.credentials ~= nil then
    for _, v in ipairs(vars) do
      if o[v[1]] ~= nil then
        return nil, format("option '%s' cannot be given with 'credentials' (which gives the keys)", v[1])
      end
    end
    return { credentials = o.credentials }
  end
  local out, given = {}, nil
  for _, v in ipairs(vars) do
    out[v[1]] = o[v[1]]
    if o[v[1]] ~= nil then given = given or v[1] end
  end
  local a, b = vars[1], vars[2]
  if given then
    for _, v in ipairs { a, b } do
      if out[v[1]] == nil then
        return nil, format("option '%s' is missing: '%s' was given (the environment is read only when no "
          .. "credential option is)", v[1], given), "MissingCredentials"
      end
    end
    return out
  end
  getenv = getenv or os.getenv
  local x, y = M.env_pair(getenv, a[2], b[2])
  if not x then
    -- (the pair unset and a further variable set, the security token: a
    -- group set in part, said as such rather than as no credentials at all)
    for i = 3, #vars do
      if not y and M.variable(vars[i][2], getenv) then
        y = format("%s is set but %s and %s are not (it goes with them)", vars[i][2], a[2], b[2])
      end
    end
    return nil, y or format("no credentials: pass %s and %s, or set %s and %s", a[1], b[1], a[2], b[2]),
      "MissingCredentials"
  end
  for _, v in ipairs(vars) do
    local value = getenv(v[2])
    if value ~= nil and value ~= "" then
      local parsed, why = check(v[1], value)
      if parsed == nil then return nil, "environment variable " .. v[2] .. " " .. why end
      out[v[1]] = parsed
    end
  end
  return out
end

--- The value of environment variable `name` (this module and
-- streamctl.credentials read the environment for the library), nil when it
-- is unset or empty.
function M.variable(name, getenv)
  local v = (getenv or os.getenv)(name)
  if v == "" then return nil end
  return v
end

return M
