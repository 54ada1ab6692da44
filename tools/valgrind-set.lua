-- The chooser of tools/valgrind-set.sh: from each file's gcov output
-- (RUNS/ID.gcov, `gcov -t -b`) and its CPU (RUNS/ID.cpu, "user system"),
-- the files valgrind runs, as spec/valgrind.txt on standard output.
--
-- What a file reached: every line of csrc/ whose count is above zero and
-- every branch taken, as "source:line" and "source:line:bN". Files are
-- picked by the most not yet reached per CPU second (a greedy set cover;
-- ties by name), until they reach all the files reach together; then each
-- picked file whose reach the others hold is dropped, the last picked first.
--
--   lua5.4 tools/valgrind-set.lua RUNS CSRC_HASH FILE...
local runs, hash = arg[1], arg[2]
assert(runs and hash and arg[3], "usage: lua5.4 tools/valgrind-set.lua RUNS CSRC_HASH FILE...")

-- (valgrind's start, 1.5 s, in the Lua 5.4 seconds its 20-30 times slower run stands for)
local START = 0.06

local function read(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  return text
end

-- The keys one gcov output holds (a set) and how many.
local function reached(text)
  local keys, n, source, line = {}, 0, nil, nil
  for l in text:gmatch("[^\n]+") do
    local taken, b = l:match("^branch%s+(%d+) taken (%d+)")
    if taken then
      if tonumber(b) > 0 and source and line then
        keys[source .. ":" .. line .. ":b" .. taken] = true
        n = n + 1
      end
    else
      local count, num, rest = l:match("^%s*([^:]+):%s*(%d+):(.*)$")
      if count then
        line = tonumber(num)
        if line == 0 then
          source = rest:match("^Source:(.*)$") or source
        elseif count:match("^%d+%*?$") and tonumber((count:gsub("%*", ""))) > 0 then
          keys[source .. ":" .. line] = true
          n = n + 1
        end
      end
    end
  end
  return keys, n
end

local files, reach, cost, all = {}, {}, {}, {}
for i = 3, #arg do
  local f = arg[i]
  local id = f:gsub("/", "_")
  files[#files + 1] = f
  reach[f] = reached(read(runs .. "/" .. id .. ".gcov"))
  local user, sys = read(runs .. "/" .. id .. ".cpu"):match("([%d.]+)%s+([%d.]+)")
  assert(user, "no CPU time for " .. f)
  cost[f] = tonumber(user) + tonumber(sys) + START
  for k in pairs(reach[f]) do all[k] = true end
end
table.sort(files)

local function count(set) local n = 0 for _ in pairs(set) do n = n + 1 end return n end
local total, covered, chosen, picked = count(all), {}, {}, {}
while count(covered) < total do
  local best, best_rate
  for _, f in ipairs(files) do
    if not picked[f] then
      local new = 0
      for k in pairs(reach[f]) do if not covered[k] then new = new + 1 end end
      local rate = new / cost[f]
      if new > 0 and (not best or rate > best_rate) then best, best_rate = f, rate end
    end
  end
  assert(best, "no file reaches what is left (cannot happen: every key is some file's)")
  picked[best] = true
  chosen[#chosen + 1] = best
  for k in pairs(reach[best]) do covered[k] = true end
end
for i = #chosen, 1, -1 do
  local f, others = chosen[i], {}
  for _, o in ipairs(chosen) do
    if o ~= f then for k in pairs(reach[o]) do others[k] = true end end
  end
  local needed = false
  for k in pairs(reach[f]) do if not others[k] then needed = true break end end
  if not needed then table.remove(chosen, i) end
end
table.sort(chosen)

local seconds = 0
for _, f in ipairs(chosen) do seconds = seconds + cost[f] end
io.write([[
# The spec files valgrind runs (tools/run-specs.sh's valgrind mode). Every
# file where our C runs in the spec's process runs against the ASan/UBSan
# builds; these few also run under valgrind, and together they reach every
# line and branch of csrc/ that all of them reach in their own process
# (gcov). Chosen by `make valgrind-set` (tools/valgrind-set.sh), for the
# csrc/ whose hash follows; spec/house/73 fails once csrc/ changes.
]])
io.write(string.format("# csrc: %s\n", hash))
for _, f in ipairs(chosen) do io.write(f, "\n") end
-- (what changes from run to run, a few branches reached by timing and the CPU, on stderr: the list stays as it was)
io.stderr:write(string.format("valgrind-set: %d of %d files reach %d lines and branches; %.1f s of Lua 5.4 CPU\n",
  #chosen, #files, total, seconds))
