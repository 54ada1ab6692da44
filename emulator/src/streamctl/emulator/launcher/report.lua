--- What the launcher says about a start that failed: what nginx logged at
-- level error or worse, and what to do about ports another program holds.
-- @module streamctl.emulator.launcher.report

local sys = require "streamctl.emulator.launcher.sys"

local read_file, tail = sys.read_file, sys.tail

local M = {}

-- A log entry's level: error or worse is what a failed start shows.
local SERIOUS = { emerg = true, alert = true, crit = true, error = true }

-- What nginx said about a failed start, each entry whole (a Lua error's
-- traceback is one entry of many lines): error.log's entries at level error
-- or worse written since byte `from`, then what nginx printed (start.log)
-- that error.log does not already hold (nginx cuts those lines at 2 KB);
-- when neither has any, all of both.
-- The flags that set the emulator's ports, by the name opts.ports gives each.
local PORT_FLAGS = { aliyun = "--aliyun-port", zego = "--zego-port", aliyun_tls = "--aliyun-tls-port",
                     zego_tls = "--zego-tls-port" }

-- What to do about ports another program holds (nginx: "bind() to
-- 127.0.0.1:18080 failed (98: Address already in use)"), or nil.
local function taken_ports_hint(text, dir, ports)
  local taken, seen = {}, {}
  for port in text:gmatch("bind%(%) to [^ ]-:(%d+) failed %(98:") do
    if not seen[port] then
      seen[port] = true
      local flag
      for name, p in pairs(ports or {}) do
        if tostring(p) == port and PORT_FLAGS[name] then flag = PORT_FLAGS[name] end
      end
      taken[#taken + 1] = port .. (flag and " (" .. flag .. ")" or "")
    end
  end
  if #taken == 0 then return nil end
  return "hint: port" .. (#taken > 1 and "s " or " ") .. table.concat(taken, ", ") .. (#taken > 1 and " are" or " is")
    .. " already in use: another emulator? `streamctl emulator status --dir DIR` says whether one runs in DIR"
    .. " (this one's: " .. dir .. "); stop it, use it (the command's --emulator-dir DIR), or give this one"
    .. " other ports with the flags named"
end

local function failure_report(dir, from, start_log, ports)
  local log_path = dir .. "/error.log"
  local text = (read_file(log_path) or ""):sub(from + 1)
  local out, keep, index = {}, false, {}
  for line in text:gmatch("[^\n]+") do
    local level = line:match("^%d+/%d+/%d+ %d+:%d+:%d+ %[(%a+)%]")
    if level then
      keep = SERIOUS[level] or false
    end
    if keep then
      -- (nginx tries a taken port five times: a line said once, with its count)
      local what = line:gsub("^%d+/%d+/%d+ %d+:%d+:%d+ ", ""):gsub("^(%[%a+%]) %d+#%d+: ", "%1 ")
      if index[what] then
        out[index[what]].n = out[index[what]].n + 1
      else
        out[#out + 1] = { line = "  " .. line, n = 1 }
        index[what] = #out
      end
    end
  end
  local said = {}
  if #out > 0 then
    local lines = {}
    for i, o in ipairs(out) do lines[i] = o.line .. (o.n > 1 and " (" .. o.n .. " times)" or "") end
    said[#said + 1] = log_path .. ":\n" .. table.concat(lines, "\n")
  end
  local printed, entry_dup = {}, false
  for line in (read_file(start_log) or ""):gmatch("[^\n]+") do
    local first = line:match("^nginx: %[%a+%] (.*)$")
    if first then
      entry_dup = #out > 0 and text:find(first:sub(1, 200), 1, true) ~= nil
    end
    if not entry_dup then
      printed[#printed + 1] = "  " .. line
    end
  end
  if #printed > 0 then
    said[#said + 1] = "nginx printed:\n" .. table.concat(printed, "\n")
  end
  if #said == 0 then
    local all = tail(log_path, 1e9, from)
    said[1] = log_path .. " has nothing at level error or worse"
      .. (all == "" and ", nor anything else" or ":\n" .. all)
  end
  said[#said + 1] = taken_ports_hint(text .. "\n" .. (read_file(start_log) or ""), dir, ports)
  return table.concat(said, "\n")
end

M.failure = failure_report

return M
