--- What a provider gives the pipeline: its rules, written down and checked.
--
-- A provider module (streamctl.aliyun, streamctl.zego) hands
-- streamctl.pipeline.client's `define` one table of rules; `define` checks it
-- here first (`check`), so a provider that leaves out a step, or an operation
-- that does not say what it does, fails when its module is loaded, naming the
-- provider, the key and the rule, and never in the middle of a call.
--
--   provider     "aliyun" | "zego" (a name of lower-case letters and digits)
--   defaults     { endpoint = "https://..." }
--   variables    { { option, VARIABLE }, ... }  (the credential options and the environment
--                variables a client reads them from when none is given: the pair that goes
--                together first, then any optional one; streamctl.pipeline.keys)
--   options      schema of the provider's own options (streamctl.base.validate)
--   operations   action -> {
--                  method = "GET" | "POST",
--                  idempotent = bool,
--                  effect = "read" | "forbid" | "resume" | "change"  (what a call does: a
--                           look-up, forbids streams, resumes them, or changes anything
--                           else; the command's audit log and blast-radius guard read
--                           this, never the action's name),
--                  cap = n (requests per second, the published limit; nil: none),
--                  recover = { action, params(p), found(result, p) } (optional: how to look
--                           up whether an attempt took effect; `unproven(result, p) -> nil | err`,
--                           optional: an answer that proves nothing, a failed look-up),
--                  done_codes = { [code] = true } (optional: codes that, after an attempt
--                           that may have taken effect, mean it did),
--                  halt = { [code] = { code, message } } (optional: a code after which a
--                           batch sends no more),
--                  ordered = bool (the service orders requests itself, e.g. by a Sequence:
--                           a late copy cannot undo a later change; a stream operation with
--                           neither waits for an earlier unknown attempt on its stream) }
--                and any keys of the provider's own (ZEGO's `sequence`, `max_ids`, ...)
--   methods      snake_case name -> { action, fields = schema, check = fn(params, values, self) }
--   batches      snake_case name -> { action, fields, list, param, chunk, check,
--                preflight = { field, check(client, values) -> found | nil, err, after(found, report)
--                -> found after the run (optional) } (asked before sending when `field` is set:
--                streamctl.pipeline.batch) }
--   measure_skew   optional true: each answer's Date sets the client's `server_skew` (seconds the
--                provider's clock is ahead of the client's: STS, whose credentials' expiry is judged by it)
--   streams(action, params) -> { key, ... } | nil  (the streams an action changes: their
--                order is kept, and a later change waits for an earlier unknown one to settle)
--   array(name, list) -> name, value          (how the service takes a Lua array)
--   configure(self, values, credentials) -> fields | nil, err  (the provider's fields on the
--                client, from its checked options and its credentials: streamctl.credentials)
--   build(self, action, op, params, now, nonce) -> request   (common params, signature)
--   decode(self, action, response) -> result | nil, err
--   nonce(self) -> string                     (the default nonce source)
--   nonce_rule(nonce) -> nil | rule broken    (what any nonce source must give)
--   common_params  set of lower-case names the signature owns (refused in params)
--   account(self) -> the id the provider's rate limits apply to
--   secrets(self) -> array of strings never to be shown
--   redact = { query = { names }, headers = { [lower-case name] = "all" | "signature" } }
--                what of a signed request a dry run must not show
--
-- Optional:
--
--   sequenced    true when its calls carry a Sequence: the client makes the generator
--                (option `sequence`, else one on the client's shared dict or Redis)
--   stamp = { param, ids(action, op, params) -> { id, ... } | nil, take(self, action, op,
--                params) -> true | nil, err }  (a step of the provider's own at a call's first
--                send: `take` fills `params[param]` there, and the retries keep it (ZEGO's
--                Sequence); `ids` names the streams whose value a call still has to take, so
--                that a store that can (Redis) takes it with the call's rate-limit slot, in one
--                round trip; a signed attempt never sent gives a value it took back;
--                with `fresh_ms` and `renew(self, action, op, params, chosen, age_ms) ->
--                true[, gone[, unsure]] | false, gone | nil, err`, a value older than
--                `fresh_ms` at an attempt (decided `age_ms` ago) is decided again there:
--                renewed, or `gone` ({ [stream] = why }) leave the call, and none left ends
--                it unsent, superseded; `unsure` (true, or why): nobody vouched, the call
--                expires; with `chosen`, only asked which a later call decided, nothing
--                renewed; `applies(op)`, optional: whether it
--                is the decision of `op`'s calls, where the others' is kept beside them:
--                streamctl.pipeline.decision)
--   caps(self) -> { [action] = n }            (the caps of this client where they are not
--                op.cap, e.g. ZEGO's test environment: asked once, when the client is made)
--   complete(self, action, op, params, dry) -> params | nil, why  (checks what only the
--                provider can, before anything is sent; for a `dry` run (prepare), also fills
--                in what its `stamp` would, without taking anything)
--   resolve_account(self, sleep)              (before each call or batch, finds the account
--                when it is not known yet: Alibaba Cloud's STS GetCallerIdentity)
--   ends(action, params, at) -> unix seconds | nil, how  (when a forbid ends by itself)
--   api() -> the provider's published methods as data (streamctl.pipeline.api: every one
--                callable, every `call`'s parameters checked by them), with
--                `default_cap` (requests per second for a published method whose page gives
--                none) and `derive(op, method)` (optional: the provider's own fields of an
--                operation made from a published method, e.g. ZEGO's Sequence)
--   refused, identity, version                (the provider's own, for its own files)
-- @module streamctl.pipeline.provider

local type, pairs, error = type, pairs, error
local format = string.format

local M = {}

--- What an operation's call can do (`effect`): only "read" changes nothing.
M.EFFECTS = { read = true, forbid = true, resume = true, change = true }

local REQUIRED_FUNCTIONS = { "streams", "array", "configure", "build", "decode", "nonce", "nonce_rule", "account",
                             "secrets" }
local OPTIONAL_FUNCTIONS = { "caps", "complete", "resolve_account", "ends", "api", "derive" }
local REQUIRED_TABLES = { "defaults", "variables", "options", "operations", "methods", "common_params", "redact" }

-- The provider's rule broken, raised where `define` was called from.
local function broken(provider, what, rule)
  error(format("streamctl: provider %s: %s %s", tostring(provider), what, rule), 4)
end

-- An operation's declarations, each by its rule.
local function check_operation(p, action, op)
  local where = "operation " .. action
  if type(op) ~= "table" then broken(p, where, "must be a table") end
  if op.method ~= "GET" and op.method ~= "POST" then broken(p, where .. "'s method", "must be GET or POST") end
  if type(op.idempotent) ~= "boolean" then broken(p, where .. "'s idempotent", "must be true or false") end
  if not M.EFFECTS[op.effect] then
    broken(p, where .. "'s effect", "must be read, forbid, resume or change (what a call does: "
      .. "the command's guard and audit log read it)")
  end
  if op.cap ~= nil and (type(op.cap) ~= "number" or op.cap <= 0) then
    broken(p, where .. "'s cap", "must be a number > 0 (requests per second) or nil")
  end
  for _, key in pairs { "recover", "done_codes", "halt" } do
    if op[key] ~= nil and type(op[key]) ~= "table" then broken(p, where .. "'s " .. key, "must be a table") end
  end
end

-- A method's or batch's action is one of the operations.
local function check_methods(p, kind, methods, operations)
  for name, spec in pairs(methods) do
    if type(spec) ~= "table" or not operations[spec.action] then
      broken(p, kind .. " " .. tostring(name), "must name one of the operations as its action")
    end
    if type(spec.fields) ~= "table" then broken(p, kind .. " " .. tostring(name) .. "'s fields", "must be a table") end
  end
end

--- Checks a provider's rules (the table above); raises naming the first
-- rule broken. Returns the rules.
-- @tparam table rules a provider's rules
function M.check(rules)
  if type(rules) ~= "table" then error("streamctl: a provider's rules must be a table", 3) end
  local p = rules.provider
  if type(p) ~= "string" or not p:find("^[a-z][a-z0-9]*$") then
    broken(p, "provider", "must be a name of lower-case letters and digits")
  end
  for _, key in pairs(REQUIRED_TABLES) do
    if type(rules[key]) ~= "table" then broken(p, key, "must be a table") end
  end
  if type(rules.defaults.endpoint) ~= "string" then broken(p, "defaults.endpoint", "must be a URL") end
  local vars = rules.variables
  for i = 1, math.max(#vars, 2) do
    local v = vars[i]
    if type(v) ~= "table" or type(v[1]) ~= "string" or type(v[2]) ~= "string" or not v[2]:find("^[%u_][%u%d_]*$") then
      broken(p, "variables[" .. i .. "]", "must be { option, VARIABLE } (a credential option and the environment "
        .. "variable it is read from; a pair at least)")
    end
  end
  for _, key in pairs(REQUIRED_FUNCTIONS) do
    if type(rules[key]) ~= "function" then broken(p, key, "must be a function") end
  end
  for _, key in pairs(OPTIONAL_FUNCTIONS) do
    if rules[key] ~= nil and type(rules[key]) ~= "function" then broken(p, key, "must be a function or nil") end
  end
  local stamp = rules.stamp
  if stamp ~= nil and (type(stamp) ~= "table" or type(stamp.param) ~= "string" or type(stamp.ids) ~= "function"
      or type(stamp.take) ~= "function" or (stamp.renew ~= nil and (type(stamp.renew) ~= "function"
      or type(stamp.fresh_ms) ~= "number" or stamp.fresh_ms ~= stamp.fresh_ms or stamp.fresh_ms <= 0))
      or (stamp.applies ~= nil and type(stamp.applies) ~= "function")) then
    broken(p, "stamp", "must be nil or { param = name, ids = function, take = function[, renew = function, "
      .. "fresh_ms = milliseconds > 0][, applies = function] }")
  end
  for action, op in pairs(rules.operations) do
    if type(action) ~= "string" then broken(p, "operations", "must be keyed by action names") end
    check_operation(p, action, op)
  end
  check_methods(p, "method", rules.methods, rules.operations)
  if rules.batches ~= nil then
    if type(rules.batches) ~= "table" then broken(p, "batches", "must be a table or nil") end
    check_methods(p, "batch", rules.batches, rules.operations)
  end
  return rules
end

return M
