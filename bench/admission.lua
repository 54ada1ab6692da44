-- The door's cost (issue 88): wrk against the edge's /admission beside
-- nginx's own floor, in one nginx worker of the OpenResty example
-- (examples/openresty/nginx.conf, streamctl.edge.server: as shipped, its
-- access and error logs on, but for its paths and ports) with a shared-dict
-- forbid list of BENCH_DOOR_LISTED (1000) streams. Rows, each BENCH_RUNS (5) runs of BENCH_DOOR_SECONDS (3)
-- s, interleaved so that they see the same machine:
--
--   floor         GET /none: nginx's own 404, for a path the example does not
--                 route (the file looked for, not found, said in the error
--                 log, as nginx answers any such path)
--   aliyun        GET /admission/aliyun?domain=&app=&stream= (Alibaba Cloud's
--                 remote authentication), a stream off the list: 200
--   nginx-rtmp    POST /admission?domain= with nginx-rtmp's on_publish form:
--                 200
--
-- wrk: one thread, BENCH_DOOR_CONNECTIONS (16) kept-alive connections. A
-- door run whose answers were not all 2xx stops the bench (a refusal is not
-- a figure). Figures (group "door", interpreter "nginx (LuaJIT ...)"): each
-- row's requests per second and the worker's CPU per request (its utime and
-- stime over the run, /proc/PID/stat, over the requests wrk counted), and
-- each door row as a fraction of the floor by CPU per request (goal: at
-- least 0.85, the door costing at most 15% of nginx's floor). (By CPU, not
-- by rate: wrk shares the machine's cores with the worker, and a run's rate
-- moved by 40% with what else ran; the worker's CPU per request by 10%.)
--
--   lua5.4 bench/admission.lua   (make bench; BENCH_ONLY=admission alone)
local lib = require "bench.lib"
local nginx = require "spec.helpers.nginx"
local edge = require "spec.helpers.edge"
local process = require "spec.helpers.process"

local RUNS, SECONDS = lib.count("BENCH_RUNS", 5), lib.count("BENCH_DOOR_SECONDS", 3)
local CONNECTIONS, LISTED = lib.count("BENCH_DOOR_CONNECTIONS", 16), lib.count("BENCH_DOOR_LISTED", 1000)
local GOAL = 0.85
local q = process.quote

assert(process.run("command -v wrk >/dev/null"), "no wrk: apt-get install wrk (make bench-deps does)")

-- The example's nginx.conf, one worker, with the floor's location beside the door's.
local dir = process.temp_dir()
local seed = dir .. "/forbids.json"
do
  local names = {}
  for i = 1, LISTED do names[i] = string.format('"banned-%d"', i) end
  process.write_file(seed, '{"aliyun":[{"domain_name":"push.example.com","app_name":"live","stream_names":['
    .. table.concat(names, ",") .. "]}]}")
end
local ca = "/etc/ssl/certs/ca-certificates.crt" -- (no provider is called: the door decides alone)
local server = nginx.start {
  env = { STREAMCTL_EDGE_TOKEN = edge.TOKEN, STREAMCTL_EDGE_FORBIDS = seed, STREAMCTL_CA_FILE = ca,
          ALIBABA_CLOUD_ACCESS_KEY_ID = edge.ALI_KEY, ALIBABA_CLOUD_ACCESS_KEY_SECRET = edge.ALI_SECRET },
  conf = function(ports, d)
    -- (as shipped but for its paths: its access log on, as the example's is)
    local text = edge.example_conf(ports[1], d, ca, 1)
    local i, j = text:find("access_log off;", 1, true)
    return text:sub(1, i - 1) .. "access_log " .. nginx.conf_quoted(d .. "/access.log") .. ";" .. text:sub(j + 1)
  end,
}
local base = "http://127.0.0.1:" .. server.ports[1]

local ok, err = pcall(function()
  -- (the seed loaded: a listed stream refused, another admitted)
  local socket = require "socket"
  local deadline = socket.gettime() + 60
  repeat
    local status = server:get("/admission/aliyun?domain=push.example.com&app=live&stream=banned-7")
    if status == 403 then break end
    socket.sleep(0.1)
  until socket.gettime() > deadline
  assert(server:get("/admission/aliyun?domain=push.example.com&app=live&stream=banned-7") == 403,
    "the forbid list was never loaded: " .. server:error_log())
  assert(server:get("/admission/aliyun?domain=push.example.com&app=live&stream=cam-1") == 200)

  local post = dir .. "/rtmp.lua"
  process.write_file(post, 'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
    .. 'wrk.body = "app=live&flashver=FMLE%2F3.0&swfurl=&tcurl=rtmp%3A%2F%2F127.0.0.1%2Flive&pageurl=&addr=127.0.0.1'
    .. '&clientid=7&call=publish&name=cam-1&type=live"\n')
  local ROWS = {
    { key = "floor", name = "nginx's own 404 (a path the example does not route): req/s", url = base .. "/none" },
    { key = "aliyun", name = "the door, /admission/aliyun (remote authentication): req/s",
      url = base .. "/admission/aliyun?domain=push.example.com&app=live&stream=cam-1" },
    { key = "rtmp", name = "the door, /admission (nginx-rtmp's on_publish form): req/s",
      url = base .. "/admission?domain=push.example.com", script = post },
  }
  -- the worker's CPU seconds so far (utime and stime, in clock ticks, fields 14 and 15 of its stat)
  local worker = server:workers()[1].pid
  local TICK = tonumber(process.capture("getconf CLK_TCK")) or 100
  local function cpu()
    local stat = assert(process.read_file("/proc/" .. worker .. "/stat"), "the worker is gone")
    local utime, stime = stat:match("%) %S+" .. string.rep(" %S+", 10) .. " (%d+) (%d+)")
    return (tonumber(utime) + tonumber(stime)) / TICK
  end
  local function wrk(row)
    local before = cpu()
    local out = process.capture(string.format("wrk -t1 -c%d -d%ds %s%s 2>&1", CONNECTIONS, SECONDS,
      row.script and ("-s " .. q(row.script) .. " ") or "", q(row.url)))
    local used = cpu() - before
    local rate, n = tonumber(out:match("Requests/sec:%s*([%d.]+)")), tonumber(out:match("(%d+) requests in"))
    assert(rate and n and n > 0 and used > 0, "wrk: " .. out)
    local bad = tonumber(out:match("Non%-2xx or 3xx responses:%s*(%d+)")) or 0
    assert(row.key == "floor" or bad == 0, row.name .. ": " .. bad .. " answers were not 2xx: " .. out)
    return rate, used / n * 1e6
  end
  for _, row in ipairs(ROWS) do wrk(row) end -- (a warm-up of each)
  local samples, per = { floor = {}, aliyun = {}, rtmp = {} }, { floor = {}, aliyun = {}, rtmp = {} }
  for r = 1, RUNS do
    for k = 0, #ROWS - 1 do
      local row = ROWS[(r + k - 1) % #ROWS + 1]
      local rate, us = wrk(row)
      table.insert(samples[row.key], rate)
      table.insert(per[row.key], us)
    end
  end
  local interp = "nginx (" .. ((server:error_log():match("LuaJIT [%d.]+")) or "LuaJIT") .. ")"
  for _, row in ipairs(ROWS) do
    lib.record { group = "door", name = row.name, unit = "/s", samples = samples[row.key], interpreter = interp }
    lib.record { group = "door", name = row.name:gsub(": req/s$", "") .. ": worker CPU per request", unit = "µs",
      samples = per[row.key], interpreter = interp }
  end
  for _, key in ipairs { "aliyun", "rtmp" } do
    local ratios = {}
    for i = 1, RUNS do ratios[i] = per.floor[i] / per[key][i] end
    local fig = lib.record { group = "door", name = "the door / nginx's 404, " .. key, unit = "x", goal = GOAL,
      samples = ratios, interpreter = interp }
    if fig.median < GOAL then print(string.format("  (goal missed: %.2f < %.2f)", fig.median, GOAL)) end
  end
end)
server:stop()
process.run("rm -rf " .. q(dir))
assert(ok, err)
