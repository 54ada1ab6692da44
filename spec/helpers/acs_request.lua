--- What a scripted Alibaba Cloud service (a transport a spec writes) reads
-- of a request the client built: its action and its query's parameters;
-- and how many of the requests it was sent named an action.
local M = {}

--- The request's action: its V3 header, else its V1 query's Action.
function M.action_of(req)
  return req.headers["x-acs-action"] or req.url:match("[?&]Action=(%w+)")
end

--- The query parameter `name` of the request's URL, decoded; or nil.
function M.query(req, name)
  local v = req.url:match("[?&]" .. name .. "=([^&]*)")
  return v and (v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

--- How many of `actions` (the actions sent, in order) are `action`.
function M.count(actions, action)
  local n = 0
  for _, a in ipairs(actions) do if a == action then n = n + 1 end end
  return n
end

return M
