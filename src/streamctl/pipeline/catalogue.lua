--- What a provider's client class offers the tools that read it (the
-- command line, the docs' generators): its named and batch methods, its
-- actions and what each does, and every method the provider publishes
-- (streamctl.pipeline.api). streamctl.pipeline.client adds them to a class.
-- @module streamctl.pipeline.catalogue

local api = require "streamctl.pipeline.api"

local pairs, sort = pairs, table.sort

local M = {}

--- Adds the catalogue's functions to `class`, made from the provider's `rules`.
function M.add(class, rules)
  --- The client's named and batch methods: an array sorted by name of
  -- `{ name, action, fields (the streamctl.base.validate schema), list (a
  -- batch's list field, or nil), effect (its action's: class.effect) }`.
  function class.methods()
    local out = {}
    for name, spec in pairs(rules.methods) do
      out[#out + 1] = { name = name, action = spec.action, fields = spec.fields,
                        effect = rules.operations[spec.action].effect }
    end
    for name, spec in pairs(rules.batches or {}) do
      out[#out + 1] = { name = name, action = spec.action, fields = spec.fields, list = spec.list,
                        effect = rules.operations[spec.action].effect }
    end
    sort(out, function(a, b) return a.name < b.name end)
    return out
  end

  --- What a call of `action` does, as its operation declares it: "read"
  -- (a look-up: it changes nothing), "forbid", "resume" or "change"; nil for
  -- an action the provider does not have (which changes, for a caller that
  -- must choose: the safe side).
  -- @tparam string action the service's name, e.g. "ForbidLiveStream"
  function class.effect(action)
    local op = rules.operations[action]
    return op and op.effect
  end

  --- The provider's actions (for `call`), sorted.
  function class.actions()
    local out = {}
    for action in pairs(rules.operations) do out[#out + 1] = action end
    sort(out)
    return out
  end

  --- Every method the provider publishes whose name holds `pattern`
  -- (plain text, any case; nil: all), sorted: `{ action, effect, method,
  -- cap, summary, params, declared, body, key, unsent_body }`.
  function class.published(pattern)
    return api.list(rules, pattern)
  end

  --- Where the published methods came from: `{ repository, commit, date }`,
  -- or nil when the provider publishes none to streamctl.
  function class.published_source()
    return api.source(rules)
  end

  --- The published method `action` (`{ action, method, summary, params, ... }`), or nil.
  function class.published_method(action)
    local m = api.method(rules, action)
    if not m then return nil end
    local out = { action = action }
    for k, v in pairs(m) do out[k] = v end
    return out
  end
end

return M
