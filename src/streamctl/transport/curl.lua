--- The libcurl transport for scripts: concurrent transfers on libcurl's multi
-- interface, one connection cache per client. It blocks while it waits, so
-- it is not for nginx request handlers.
--
-- `new(opts)` returns a transport table (see streamctl.pipeline.client):
-- `start(key, request)`, `poll(timeout_seconds)`, `sleep(seconds)`, `close()`.
-- The C module (streamctl.curl) is loaded on first use.
--
-- An attempt goes on the wire once: libcurl's own resend of a request whose
-- reused connection closed unanswered after it left is stopped (csrc/
-- curl_request.c, on_prereq), the attempt a NetworkError with `sent = true`;
-- connections are kept alive all the same.
--
-- Every wait ends early when a signal handler runs (a Ctrl-C or SIGTERM that
-- streamctl.signal caught): `sleep` returns what it did not sleep and `poll`
-- returns what has completed, maybe nothing. The caller (the engine) then
-- asks its `cancel` and waits again if nothing asked it to stop.
-- @module streamctl.transport.curl

local common = require "streamctl.transport.common"
local validate = require "streamctl.base.validate"

local floor = math.floor
local ipairs, pairs, type = ipairs, pairs, type

local M = {}

local function c()
  return require "streamctl.curl"
end

-- What both transports share (options, defaults, the header rule) is
-- streamctl.transport.common's; re-exported here for this transport's callers.
M.OPTIONS, M.DEFAULTS, M.TOKEN, M.header_fields = common.OPTIONS, common.DEFAULTS, common.TOKEN, common.header_fields

--- A blocking sleep, for scripts.
-- @return the seconds not slept: 0, or more when a signal handler ended it
function M.sleep(seconds)
  return c().sleep(seconds)
end

-- The proxies a transport may go through (its option's, or with "env" the
-- environment's), for its messages: a completion's message that quotes one
-- shows it as streamctl.base.redact.url does (user information and query hidden).
local PROXY_VARIABLES = { "https_proxy", "HTTPS_PROXY", "http_proxy", "all_proxy", "ALL_PROXY" }
local function proxies(proxy)
  if proxy == nil then return nil end
  if proxy ~= "env" then return { proxy } end
  local out = {}
  for _, name in ipairs(PROXY_VARIABLES) do
    local v = os.getenv(name)
    if v and v ~= "" then out[#out + 1] = v end
  end
  return #out > 0 and out or nil
end

-- `done`'s failures with every proxy in their messages redacted.
local function redact_proxies(done, urls)
  local redact = require "streamctl.base.redact"
  for _, d in ipairs(done) do
    local e = d.err
    if type(e) == "table" and type(e.message) == "string" then
      for _, p in ipairs(urls) do e.message = redact.url_in(e.message, p) end
    end
  end
  return done
end

--- Makes a transport.
-- @param opts a table holding the options in `OPTIONS` (all optional; other
--   keys, a client's own options, are not looked at); those not given are
--   `DEFAULTS`'
-- @return the transport, or nil and an InvalidParameter error naming the option
function M.new(opts)
  if opts ~= nil and type(opts) ~= "table" then error("bad argument #1 to 'new' (opts must be a table or nil)", 2) end
  local given = {}
  for _, o in ipairs(M.OPTIONS) do given[o.name] = opts and opts[o.name] end
  local checked, err = validate.construct(M.OPTIONS, given, "streamctl.transport.curl.new", "new")
  if not checked then return nil, err end
  local copts = {}
  for _, o in ipairs(M.OPTIONS) do
    local v = checked[o.name]
    if v == nil then v = M.DEFAULTS[o.name] end
    copts[o.name] = v
  end
  local curl = c()
  local m = curl.multi(copts)
  local t = { sleep = curl.sleep }
  local via = proxies(copts.proxy)

  function t.start(key, request)
    -- The header rule is curl.c's, whose InvalidRequest says what the cosocket transport says (the same
    -- rule, the same messages). A name or value of a type curl.c raises on is told here as the rule
    -- tells it: a scan of types, not the whole rule, which cost each request's header its own call.
    local headers = type(request) == "table" and request.headers -- (anything else: curl.c raises)
    if type(headers) == "table" then
      for name, value in pairs(headers) do
        local tv = type(value)
        if type(name) ~= "string" or (tv ~= "string" and tv ~= "number") then
          local _, why = common.check_headers(headers)
          return nil, { code = "InvalidRequest", message = why, sent = false }
        end
      end
    end
    return m:add(key, request)
  end

  --- Completions, waiting up to `timeout` seconds for at least one (less
  -- when a signal handler ran: then maybe none).
  function t.poll(timeout)
    if m:pending() == 0 then
      if timeout > 0 then curl.sleep(timeout) end
      return {}
    end
    local done = m:poll(floor(timeout * 1000 + 0.5))
    if via then return redact_proxies(done, via) end
    return done
  end

  function t.close()
    m:close()
  end

  return t
end

return M
