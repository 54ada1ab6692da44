-- Gathers the figures the benchmarks appended to BENCH_OUT (one JSON line
-- each, see bench/lib.lua) into bench/results.json, with the machine and the
-- versions they were measured on, and prints them as one table.
--
--   lua5.4 bench/report.lua FIGURES.jsonl bench/results.json
local cjson = require "cjson"
local lib = require "bench.lib"

local input, output = arg[1], arg[2]
local function capture(cmd)
  local p = io.popen(cmd .. " 2>/dev/null")
  if not p then return nil end
  local out = p:read("*a")
  p:close()
  out = out and out:gsub("%s+$", "")
  return out ~= "" and out or nil
end

local figures = {}
for line in io.lines(input) do figures[#figures + 1] = cjson.decode(line) end

local results = {
  date = os.date("!%Y-%m-%dT%H:%M:%SZ"),
  machine = {
    kernel = capture("uname -srm"),
    cpu = capture("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1"),
    cores = tonumber(capture("nproc") or ""),
  },
  versions = {
    lua = capture("lua5.4 -v"), luajit = capture("luajit -v"), openssl = capture("openssl version"),
    libcurl = capture("curl-config --version") or capture("curl --version | head -1"),
    nginx = capture("nginx -v 2>&1 || /usr/sbin/nginx -v 2>&1"),
    streamctl = capture("git rev-parse --short HEAD"),
  },
  figures = figures,
}
local f = assert(io.open(output, "wb"))
f:write(cjson.encode(results), "\n")
f:close()

print("")
print(string.format("== %d figures (median of runs; spread = (fastest - slowest) / median), written to %s",
  #figures, output))
local group
for _, fig in ipairs(figures) do
  if fig.group ~= group then
    group = fig.group
    print("-- " .. group)
  end
  print(lib.line(fig))
end
