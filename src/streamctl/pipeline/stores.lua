--- The store backends and their one contract: where a client's options
-- become store objects. The one module of the core that names a backend,
-- and only when an option asks for one, so a client that uses none loads
-- none (docs/development/architecture.md, "Layers"); the client and its pacing name
-- none, they ask this module.
--
-- A backend is a module of its own, chosen by a client option of its own
-- (BACKENDS, below: one line a backend), that gives:
--
--   check(value) -> config | nil, why    the option's rule (as the client checks
--                                        its options, before anything is made)
--   handle(config) -> handle, own | nil, err   what its stores share (a dict, a
--                                        connection); `own`: made here, the client
--                                        closes it (`handle:close()`) when it closes
--   ratelimit_store(handle, { monotonic = fn }) -> store
--                                        a shared rate-limit schedule: the contract
--                                        of streamctl.engine.ratelimit's `store`
--                                        (none in a backend of `decisions` alone)
--   sequence_store(handle, prefix, { monotonic = fn }) -> store
--                                        Sequences of keys under `prefix`: the
--                                        contract of streamctl.engine.sequence's `store`
--   credentials_store(handle, name) -> store   (optional) temporary credentials
--                                        shared by those on the handle:
--                                        streamctl.credentials.refresh's `shared`
--
-- A rate-limit store that can take a provider's stamp (ZEGO's Sequence)
-- with the slot, in one step, has `reserve_sequenced(key, rate, burst,
-- max_delay, sequence_store, ids, margin)`, given its own backend's sequence
-- store (streamctl.pipeline.pacing). A backend whose module is not installed
-- (a rock of its own) answers its option with what to install (`missing`).
--
-- The options it reads: each backend's (`shared_dict`: an nginx
-- lua_shared_dict's name; `redis`: a config, a URL or a connection object;
-- `decision_file`: a path, the decisions and Sequences alone), and
-- `rate_limit_store` (a store object, used as given).
-- @module streamctl.pipeline.stores

local require, pcall, error, ipairs, tostring = require, pcall, error, ipairs, tostring
local searchpath = package.searchpath

local M = {}

--- The backends, in the order a client takes its stores from them.
M.BACKENDS = {
  { option = "shared_dict", module = "streamctl.store.shdict" },
  -- (a rock of its own, streamctl-redis: it brings hiredis)
  { option = "redis", module = "streamctl.store.redis", missing = "needs the streamctl-redis rock, which is not "
    .. "installed (README \"Install\": apt-get install libhiredis-dev, then luarocks make "
    .. "rockspecs/streamctl-redis-scm-1.rockspec)" },
  -- (the machine's decision store, a file: the decisions and Sequences, no rate limits)
  { option = "decision_file", module = "streamctl.store.decisionfile", decisions = true },
}

-- A backend's module, or nil and what to install when it is not installed
-- (installed but failing to load is another matter: its own error, raised).
local function load(backend)
  local ok, m = pcall(require, backend.module)
  if ok then return m end
  if backend.missing and not searchpath(backend.module, package.path) then return nil, backend.missing end
  error(m, 0)
end

--- The rule of each backend's option, by option name: `check(value)` as the
-- client's option schema takes it.
M.RULES = {}
for _, b in ipairs(M.BACKENDS) do
  M.RULES[b.option] = function(v)
    local m, missing = load(b)
    if not m then return nil, missing end
    return m.check(v)
  end
end

--- The handles of checked options `o`: `{ { backend, module, handle, own }, ... }`
-- for each backend whose option is given, in BACKENDS' order; or nil, the
-- option and the error object.
function M.open(o)
  local out = {}
  for _, b in ipairs(M.BACKENDS) do
    if o[b.option] ~= nil then
      local m = load(b)
      local h, own = m.handle(o[b.option])
      if not h then return nil, b.option, own end
      out[#out + 1] = { backend = b, module = m, handle = h, own = own }
    end
  end
  return out
end

--- Closes the handles `open` made (not those the caller gave).
function M.close(handles)
  for _, h in ipairs(handles or {}) do
    if h.own then h.handle:close() end
  end
end

--- The rate-limit store of checked options `o` (`rate_limit_store`, else
-- the first backend's), or nil when the budget is the client's own; and the
-- handle it was made on. `monotonic`: the clock.
function M.ratelimit(o, handles, monotonic)
  if o.rate_limit_store then return o.rate_limit_store end
  local h = handles[1]
  if not h or h.backend.decisions then return nil end
  return h.module.ratelimit_store(h.handle, { monotonic = monotonic }), h
end

--- The Sequence stores for keys under `prefix`: the one the generator uses
-- (the first backend's; nil: in memory), and the one a rate-limit store on
-- the handle `with` can fill in the slot's step (that handle's: nil without one).
function M.sequence(handles, prefix, monotonic, with)
  local h = handles[1]
  local store = h and h.module.sequence_store(h.handle, prefix, { monotonic = monotonic }) or nil
  if not with then return store, nil end
  if with == h then return store, store end
  return store, with.module.sequence_store(with.handle, prefix, { monotonic = monotonic })
end

--- A credentials holder's shared state on the backend of `option` (its
-- value `value`) under `name` (the workers of one nginx renew once), or nil
-- and why.
function M.credentials(option, value, name)
  for _, b in ipairs(M.BACKENDS) do
    if b.option == option then
      local m, missing = load(b)
      if not m then return nil, missing end
      if not m.credentials_store then return nil, "keeps no shared credentials" end
      local config, why = m.check(value)
      if not config then return nil, why end
      local h, err = m.handle(config)
      if not h then return nil, err end
      return m.credentials_store(h, name)
    end
  end
  error("streamctl.pipeline.stores: no backend takes option '" .. tostring(option) .. "'", 2)
end

return M
