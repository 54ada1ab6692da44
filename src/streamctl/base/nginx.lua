--- Where in nginx the caller is, and what I/O it may do there: the phase
-- sets and their message, written once for every module that asks (the
-- transports, the Redis connections, the shared-dict store's lock wait).
--
-- One set, because lua-nginx-module has one: cosockets (`ngx.socket.tcp`),
-- `ngx.sleep`, light threads and semaphores all check the same "yieldable"
-- contexts (NGX_HTTP_LUA_CONTEXT_YIELDABLE in its ngx_http_lua_util.h):
-- rewrite, server_rewrite, access, content, timer, ssl_client_hello,
-- ssl_cert and ssl_session_fetch; stream-lua-nginx-module adds preread.
-- Everywhere else in nginx (init_worker, set, header and body filters, log,
-- balancer, ssl_session_store, exit_worker) Lua can neither yield nor block
-- without stalling the worker. `init` (init_by_lua, in the master before any
-- worker starts) cannot yield either, but blocking there is harmless.
--
-- Outside nginx (plain Lua 5.4 or LuaJIT) there is no phase: blocking I/O.
-- `ngx` is read at every call (not captured at load), so a module loaded
-- outside nginx, or a spec's stand-in `ngx`, is seen as it is now.
-- @module streamctl.base.nginx

local rawget, tostring = rawget, tostring

local M = {}

--- The phases (names as `ngx.get_phase()` gives them) in which Lua can yield:
-- cosockets, `ngx.sleep`, light threads and semaphores work there.
M.YIELDING = { rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
               ssl_client_hello = true, ssl_cert = true, ssl_session_fetch = true, preread = true }

--- The phases in which a client sends: the yielding ones that have a
-- request's `ngx.ctx` (lua-nginx-module documents it for rewrite, access,
-- content and timers; server_rewrite is rewrite at the server level), where
-- the transport keeps a request's cosocket connections. The SSL phases and
-- stream's preread can yield but have no `ngx.ctx` in the documented
-- contexts (lua-resty-core shares one across SSL phases only in some
-- versions): a client refuses to send there, as it does in a phase that
-- cannot yield, and Redis and the shared dict's lock wait still work.
M.SENDING = { rewrite = true, server_rewrite = true, access = true, content = true, timer = true }

--- The current nginx phase (`ngx.get_phase()`), or nil outside nginx.
function M.phase()
  local ngx = rawget(_G, "ngx")
  if not ngx or not ngx.get_phase then return nil end
  return ngx.get_phase()
end

--- Whether Lua can yield in `phase` (default: the current one); false
-- outside nginx.
function M.can_yield(phase)
  if phase == nil then phase = M.phase() end
  return M.YIELDING[phase] == true
end

--- The message for `action` (e.g. "send", "reach Redis") refused in nginx's
-- `phase`: names the phase and says where to do it instead.
function M.refusal(action, phase)
  local why = M.YIELDING[phase] and "it has no request context (ngx.ctx) to keep a client's connections in"
    or "it has no cosockets and must not block"
  return "streamctl cannot " .. action .. " from nginx's '" .. tostring(phase) .. "' phase: " .. why .. "; "
    .. action .. " from ngx.timer.at(0, function() ... end) instead (or from a rewrite, access or content handler)"
end

--- How I/O made now must be done: "cosocket" (nginx, a phase of `phases`:
-- default YIELDING), "blocking" (outside nginx, or init_by_lua), or nil and
-- the refusal for `action` (any other phase).
function M.io(action, phases)
  local phase = M.phase()
  if phase == nil or phase == "init" then return "blocking" end
  if (phases or M.YIELDING)[phase] then return "cosocket" end
  return nil, M.refusal(action, phase)
end

--- The phases with a request whose headers Lua reads (`ngx.var`): a call
-- made there belongs to the request's trace by default.
M.REQUEST = { rewrite = true, server_rewrite = true, access = true, content = true }

--- The current request's `traceparent` and `tracestate` headers (inside
-- nginx, in a request's phase), or nil. A `tracestate` given in several
-- header fields is one list, joined by commas in the order they came (W3C
-- Trace Context, after RFC 7230 section 3.2.2), where nginx's
-- `$http_tracestate` is the first alone.
function M.request_trace()
  local ngx = rawget(_G, "ngx")
  if not ngx or not ngx.get_phase or not M.REQUEST[ngx.get_phase()] then return nil end
  local var = ngx.var
  local parent = var.http_traceparent
  if parent == nil then return nil end
  local state = var.http_tracestate
  if state ~= nil then
    -- (every field: read only when there is one, all the request's headers, unbounded)
    local all = ngx.req.get_headers(0).tracestate
    if type(all) == "table" then state = table.concat(all, ",") end
  end
  return { traceparent = parent, tracestate = state }
end

return M
