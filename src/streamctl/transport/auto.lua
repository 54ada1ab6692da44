--- The transport a client uses unless it is given one: the one that works
-- where the call is made, chosen at every call.
--
--   inside nginx, in a phase with cosockets (rewrite, access, content,
--   `ngx.timer` callbacks...: streamctl.base.nginx.YIELDING)
--                             streamctl.transport.ngx: never blocks the worker;
--                             one per request or timer (its light threads
--                             belong to it), kept in `ngx.ctx`
--   outside nginx, or in `init_by_lua` (the master, before workers start:
--   blocking is harmless)     streamctl.transport.curl, made on first use and
--                             kept by the client
--   anywhere else in nginx (init_worker, set, header/body filters, log,
--   balancer...)              nothing: `check()` says why, and a client's call
--                             returns that error before anything is paced or sent
--
-- `new(opts, mode)` takes the client's transport options (those of
-- streamctl.transport.curl, already checked) and a mode: "auto", or "curl" or
-- "ngx" to use one of them only. It returns a transport table (see
-- streamctl.pipeline.client) with `start`, `poll`, `sleep`, `close`, and
-- `check() -> true | nil, why`. Waits (pacing, backoff, polls) use the chosen
-- transport's sleep: `ngx.sleep` inside nginx.
-- @module streamctl.transport.auto

-- luacheck: globals ngx
local curl_transport = require "streamctl.transport.curl"
local ngx_transport = require "streamctl.transport.ngx"
local nginx = require "streamctl.base.nginx"

local ipairs, error = ipairs, error

local M = {}

--- Where a call made now would go: "ngx", "curl", or nil and why neither
-- works here (the phase, and what to do instead).
function M.here()
  local how, why = nginx.io("send", nginx.SENDING)
  if how == "cosocket" then return "ngx" end
  if how == "blocking" then return "curl" end
  return nil, why
end

--- A sleep that suits where it is called: `ngx.sleep` where nginx can
-- yield, else libcurl's (blocking) sleep.
function M.sleep(seconds)
  if M.here() == "ngx" then return ngx.sleep(seconds) end
  return curl_transport.sleep(seconds)
end

local NGX_OPTIONS = {}
for _, o in ipairs(curl_transport.OPTIONS) do
  if o.name ~= "proxy" then NGX_OPTIONS[#NGX_OPTIONS + 1] = o.name end
end

-- The transport for a call made now (the client's libcurl one, made on
-- first use, or its request's cosocket one), or nil and why there is none.
local function pick(state)
  local mode = state.mode
  local where, why = M.here()
  if mode ~= "auto" and where ~= mode then
    if mode == "ngx" then
      return nil, why or "transport 'ngx' needs nginx's cosockets: call from a rewrite, access or content "
        .. "handler or an ngx.timer.at callback"
    end
    if not where then return nil, why end
    -- "curl" inside a request handler: the caller asked for it (it blocks the worker).
  elseif not where then
    return nil, why
  end
  if mode == "curl" or where == "curl" then
    if not state.curl then
      local curl, err = curl_transport.new(state.opts) -- (checked by the client already: a ca_file gone since)
      if not curl then return nil, err.message end
      state.curl = curl
    end
    return state.curl
  end
  if state.opts.proxy then
    return nil, "option 'proxy' cannot be used inside nginx: cosockets connect directly (leave the proxy out, "
      .. "or pass transport = \"curl\", which blocks the worker)"
  end
  local ctx = ngx.ctx
  local tr = ctx[state]  -- (this client's transport in this request)
  if not tr then
    local err
    tr, err = ngx_transport.new(state.ngx_opts) -- (checked by the client already: a ca_file gone since)
    if not tr then return nil, err.message end
    ctx[state] = tr
  end
  return tr
end

--- Makes the transport.
-- @param opts the client's options (only the transport's are read)
-- @param mode "auto" (default), "curl" or "ngx"
function M.new(opts, mode)
  local state = { mode = mode or "auto", opts = opts, ngx_opts = {} }
  for _, name in ipairs(NGX_OPTIONS) do state.ngx_opts[name] = opts[name] end
  local t = {}

  function t.check()
    local tr, why = pick(state)
    if not tr then return nil, why end
    return true
  end

  function t.start(key, request)
    local tr, why = pick(state)
    if not tr then return nil, { code = "InvalidRequest", message = why, sent = false } end
    return tr.start(key, request)
  end

  function t.poll(timeout)
    local tr = pick(state)
    if not tr then return {} end
    return tr.poll(timeout)
  end

  function t.sleep(seconds)
    local tr, why = pick(state)
    if not tr then error(why, 2) end
    return tr.sleep(seconds)
  end

  --- Frees the libcurl transport's connections. (A request's cosocket
  -- transport ends with its request.)
  function t.close()
    if state.curl then state.curl.close() end
    state.curl = nil
  end

  return t
end

--- One request at a time over a transport of its own (never a client's,
-- whose completions belong to its engine): `exchange(request) -> response |
-- nil, err`. `opts` are streamctl.transport.curl's options (timeouts,
-- ca_file, proxy); inside nginx it uses cosockets. For the credential
-- sources and the trace exporter.
function M.exchange(opts)
  local io, err = M.new(opts, "auto")
  if not io then return nil, err end
  local n = 0
  -- (the transport ends each request by its timeout: the loop's bound is a guard)
  local rounds = ((opts.timeout_ms or 10000) + (opts.connect_timeout_ms or 0)) / 100 + 50
  return function(request)
    n = n + 1
    local key = { n = n }
    local ok, serr = io.start(key, request)
    if not ok then return nil, serr end
    for _ = 1, rounds do
      for _, c in ipairs(io.poll(0.1)) do
        if c.key == key then return c.res, c.err end
      end
    end
    return nil, { code = "NetworkError", message = "no answer (the transport did not end the request)" }
  end, io
end

return M
