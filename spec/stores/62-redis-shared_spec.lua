-- load: heavy
-- sanitizers: none (its clients run in processes and nginx workers of their own; the C loaded here, the rest covers)
-- One provider budget across machines: independent clients (separate Lua
-- processes and two nginx servers, none sharing anything but a Redis) act on
-- one account against the emulator counting the strictest way (a sliding
-- window). Together: zero throttled, ZEGO Sequences for one stream strictly
-- increasing whoever sent them; Redis killed mid-run: each process says so
-- once, loses nothing, and is back on the shared budget once Redis answers
-- again. Verdicts only: the rates (together under the cap, each process at
-- its share while Redis is away) are asserted in virtual time, on the
-- simulation's Redis (spec/engine/11-store-time, "one Redis budget across
-- processes").
local emu = require "spec.helpers.emulator"
local redis_helper = require "spec.helpers.redis"
local nginx = require "spec.helpers.nginx"
local process = require "spec.helpers.process"
local cjson = require "cjson"
local core = require "streamctl.core"

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local WORKER = ROOT .. "/spec/helpers/redis_worker.lua"

-- The batch an nginx server runs when asked (GET /run?...), in a content handler.
local HANDLER = [==[
local cjson = require "cjson"
local streamctl = require "streamctl"
return function()
  local a = ngx.req.get_uri_args()
  local names = {}
  for i = 1, tonumber(a.count) do names[i] = a.prefix .. "-" .. i end
  local report, c
  if a.provider == "aliyun" then
    c = assert(streamctl.aliyun.new { endpoint = a.endpoint, access_key_id = "LTAIemulatorKey",
      access_key_secret = "emulator-secret", redis = a.redis })
    report = assert(c:resume_live_streams { domain_name = "push.example.com", app_name = "live",
                                             stream_names = names })
  else
    c = assert(streamctl.zego.new { endpoint = a.endpoint, app_id = 1234567890,
      server_secret = "0123456789abcdef0123456789abcdef", redis = a.redis })
    local total = { total = 0, succeeded = 0, failed = 0, unknown = 0 }
    for _ = 1, tonumber(a.rounds) do
      local r = assert(c:resume_rtc_streams { stream_ids = names })
      for k in pairs(total) do total[k] = total[k] + r[k] end
    end
    report = total
  end
  c:close()
  ngx.say(cjson.encode { total = report.total, succeeded = report.succeeded, failed = report.failed,
                         unknown = report.unknown })
end
]==]

local write = process.write_file

-- A file's bytes, "" when there is none (yet).
local function read(path) return process.read_file(path) or "" end

local function json_lines(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do out[#out + 1] = cjson.decode(line) end
  return out
end

local function count_lines(text, pattern)
  local n = 0
  for line in text:gmatch("[^\n]+") do
    if line:find(pattern) then n = n + 1 end
  end
  return n
end

describe("one provider budget in Redis", function()
  local emulator, redis, servers, tmp

  lazy_setup(function()
    assert(redis_helper.available())
    emulator = emu.start { config = { aliyun = { rate_limiter = "sliding_window" },
                                      zego = { rate_limiter = "sliding_window" } } }
    redis = redis_helper.start {}
    tmp = os.tmpname()
    os.remove(tmp)
    assert(os.execute("mkdir -p " .. process.quote(tmp)))
    servers = {}
    for i = 1, 2 do
      servers[i] = nginx.start {
        prepare = function(d) write(d .. "/redis_spec_handler.lua", HANDLER) end,
        lua_path = function(d) return d .. "/?.lua" end,
        lua_cpath = function() return (nginx.jit_cpath():gsub(";.*$", "")) end,
        http = function(ports)
          return "server { listen 127.0.0.1:" .. ports[1] .. ";\n"
            .. "  location = /run { content_by_lua_block { require('redis_spec_handler')() } } }"
        end,
      }
    end
  end)

  lazy_teardown(function()
    for _, s in ipairs(servers or {}) do s:stop() end
    if redis then redis:stop() end
    if emulator then emulator:stop() end
    if tmp then os.execute("rm -rf " .. process.quote(tmp)) end
  end)

  -- Starts one independent client: a Lua process (`args` for redis_worker.lua)
  -- or a GET to an nginx server's /run; its standard error goes to a file.
  local n_clients = 0
  local function start_client(args)
    n_clients = n_clients + 1
    local err = tmp .. "/client-" .. n_clients .. ".err"
    local quoted = {}
    for i, a in ipairs(args) do quoted[i] = process.quote(tostring(a)) end
    local child = process.spawn(process.quote(process.interpreter()) .. " " .. process.quote(WORKER) .. " "
      .. table.concat(quoted, " ") .. " 2>" .. process.quote(err))
    return { child = child, err = err }
  end

  local function start_nginx_client(server, q)
    local parts = {}
    for k, v in pairs(q) do parts[#parts + 1] = k .. "=" .. emu.pct(tostring(v)) end
    table.sort(parts)
    return start_client { "get", "http://127.0.0.1:" .. server.ports[1] .. "/run?" .. table.concat(parts, "&") }
  end

  -- Waits for every client; returns their reports summed, and their stderr.
  local function finish(clients)
    local sum = { total = 0, succeeded = 0, failed = 0, unknown = 0 }
    local errs, codes = {}, {}
    for i, c in ipairs(clients) do
      local line = c.child.pipe:read("*l")
      c.child.pipe:close()
      errs[i] = read(c.err)
      assert(line, "client " .. i .. " printed nothing; its stderr:\n" .. errs[i])
      local r = cjson.decode(line)
      for k in pairs(sum) do sum[k] = sum[k] + r[k] end
      for _, code in ipairs(r.codes or {}) do codes[#codes + 1] = code end
    end
    -- (what failed, if anything, shows beside the counts)
    if #codes > 0 then sum.codes = table.concat(codes, " ") end
    return sum, errs
  end

  -- The emulator's log of `action`, oldest first.
  local function log_of(provider, action)
    local entries = emulator:log { provider = provider, action = action, limit = 10000 }
    table.sort(entries, function(a, b) return a.seq < b.seq end)
    return entries
  end

  it("three processes and two nginx servers on one Aliyun account: every stream done, zero throttled, under the cap",
    function()
    emulator:reset()
    local clients = {}
    for i = 1, 3 do
      clients[#clients + 1] = start_client { "aliyun", emulator.aliyun_url, redis.url, "proc" .. i, 60 }
    end
    for i = 1, 2 do
      clients[#clients + 1] = start_nginx_client(servers[i], { provider = "aliyun", endpoint = emulator.aliyun_url,
        redis = redis.url, prefix = "ngx" .. i, count = 60 })
    end
    local sum, errs = finish(clients)
    assert.same({ total = 300, succeeded = 300, failed = 0, unknown = 0 }, sum)
    for i, e in ipairs(errs) do assert.equal("", e, "client " .. i .. " said something") end
    local c = emulator:state().aliyun.counters.ResumeLiveStream
    assert.equal(0, c.throttled or 0)
    assert.equal(300, c.accepted)
    assert.equal(300, #log_of("aliyun", "ResumeLiveStream"))
    -- (under the cap together: spec/engine/11-store-time, in virtual time; how near the cap they came
    -- is a figure: make bench measures it, bench/redis.lua's three processes on one budget in Redis)
  end)

  it("ZEGO Sequences for one stream strictly increase across processes and nginx servers", function()
    emulator:reset()
    local clients = {}
    for _ = 1, 2 do
      clients[#clients + 1] = start_client { "zego", emulator.zego_url, redis.url, "shared", 20, 4 }
    end
    for i = 1, 2 do
      clients[#clients + 1] = start_nginx_client(servers[i], { provider = "zego", endpoint = emulator.zego_url,
        redis = redis.url, prefix = "shared", count = 20, rounds = 4 })
    end
    local sum = finish(clients)
    assert.same({ total = 320, succeeded = 320, failed = 0, unknown = 0 }, sum)
    local entries = log_of("zego", "ResumeRTCStreams")
    assert.equal(16, #entries)
    -- Each Sequence of a stream taken once (the shared counter's promise), and those the provider
    -- applied increasing in the order it applied them. (A call stamped before another may reach it
    -- after: then it is stale, applied nowhere, and the later decision stands; how often a busy
    -- machine does that is never the verdict.)
    local last, taken = {}, {}
    for _, e in ipairs(entries) do
      local s = assert(tonumber(e.sequence), "no Sequence logged")
      for _, id in ipairs(e.streams) do
        taken[id] = taken[id] or {}
        assert.is_nil(taken[id][e.sequence], "stream " .. id .. ": Sequence " .. e.sequence .. " taken twice")
        taken[id][e.sequence] = true
      end
      if e.verdict ~= "ok" then assert.equal("stale", e.verdict) end
      for _, id in ipairs(e.verdict == "ok" and e.applied_streams or {}) do
        assert.is_true(last[id] == nil or s > last[id],
          "stream " .. id .. ": Sequence " .. s .. " applied after " .. tostring(last[id]))
        last[id] = s
      end
    end
    local c = emulator:state().zego.counters.ResumeRTCStreams
    assert.equal(0, c.throttled or 0)
  end)

  -- The installed command (as spec/40 runs it), in the background, its
  -- output to files; `env` names variables to set.
  local JIT = rawget(_G, "jit") ~= nil
  local V = JIT and "5.1" or "5.4"
  local TREE = ROOT .. (JIT and "/build/jit" or "/build/5.4")
  local function command(args, env)
    local q = process.quote
    n_clients = n_clients + 1
    local out, err = tmp .. "/cli-" .. n_clients .. ".out", tmp .. "/cli-" .. n_clients .. ".err"
    local line = "env -i PATH=/usr/bin:/bin HOME=" .. q(tmp)
      .. " LUA_PATH=" .. q(TREE .. "/share/lua/" .. V .. "/?.lua;" .. TREE .. "/share/lua/" .. V .. "/?/init.lua;;")
      .. " LUA_CPATH=" .. q(TREE .. "/lib/lua/" .. V .. "/?.so;;") .. " " .. (env or "") .. " "
      .. q(TREE .. "/bin/streamctl") .. " " .. args
    -- the shell prints the command's exit status last
    local child = process.spawn("sh -c " .. q(line .. " >" .. q(out) .. " 2>" .. q(err) .. "; echo $?"))
    return { child = child, out = out, err = err }
  end
  local function wait(c)
    local status = tonumber(c.child.pipe:read("*l"))
    c.child.pipe:close()
    return status, read(c.out), read(c.err)
  end
  local function streams(prefix, n)
    local list = {}
    for i = 1, n do list[i] = prefix .. "-" .. i end
    return table.concat(list, " ")
  end
  local CLI_ALIYUN = "aliyun resume-live-streams --domain-name push.example.com --app-name live "
    .. "--access-key-id LTAIemulatorKey --access-key-secret emulator-secret --output json --endpoint "

  it("the command: --redis and STREAMCTL_REDIS_URL share the budget between two commands", function()
    emulator:reset()
    local a = command(CLI_ALIYUN .. emulator.aliyun_url .. " --redis " .. redis.url .. " " .. streams("cli-a", 45))
    local b = command(CLI_ALIYUN .. emulator.aliyun_url .. " " .. streams("cli-b", 45),
      "STREAMCTL_REDIS_URL=" .. process.quote(redis.url))
    for _, c in ipairs { a, b } do
      local status, out, err = wait(c)
      assert.equal(0, status, err)
      assert.equal("", err)
      local n = 0
      for line in out:gmatch("[^\n]+") do
        assert.is_true(cjson.decode(line).ok, line)
        n = n + 1
      end
      assert.equal(45, n)
    end
    local c = emulator:state().aliyun.counters.ResumeLiveStream
    assert.equal(90, c.accepted)
    assert.equal(0, c.throttled or 0)
  end)

  it("the command: a bad STREAMCTL_REDIS_URL is a usage error naming it; Redis down is said once a store",
    function()
    local status, out, err = wait(command(CLI_ALIYUN .. emulator.aliyun_url .. " one",
      "STREAMCTL_REDIS_URL=http://127.0.0.1:6379"))
    assert.equal(2, status)
    assert.equal("", out)
    assert.matches("STREAMCTL_REDIS_URL", err)
    emulator:reset()
    local port = process.free_port() -- nothing listens there
    status, out, err = wait(command(CLI_ALIYUN .. emulator.aliyun_url .. " --redis redis://:hidden-pw@127.0.0.1:"
      .. port .. " " .. streams("down", 3)))
    assert.equal(0, status, err)
    -- (once for the rate limits, once for the decisions: issue 87)
    assert.equal(1, count_lines(err, "^streamctl: Redis at 127%.0%.0%.1:" .. port .. " failed .*; rate limits fall back"),
      err)
    assert.equal(1, count_lines(err, "^streamctl: Redis at 127%.0%.0%.1:" .. port .. " failed .*; decisions fall back to "
      .. "this process's own %(a forbid or resume that waits past its window meanwhile is not sent%) until it answers"),
      err)
    assert.equal(2, count_lines(err, "."), err)
    assert.is_nil(err:find("hidden-pw", 1, true))
    assert.equal(3, emulator:state().aliyun.counters.ResumeLiveStream.accepted)
    assert.equal(3, #json_lines(out))
  end)

  it("Redis killed mid-run: one notice per process, nothing lost, zero throttled; back with Redis",
    function()
    emulator:reset()
    local clients = {}
    for i = 1, 3 do
      clients[#clients + 1] = start_client { "aliyun", emulator.aliyun_url, redis.url, "outage" .. i, 100 }
    end
    -- about 2 s on the shared budget, 3 s without Redis, then the rest with it again
    local t0 = core.now()
    os.execute("sleep 2")
    redis:kill()
    local killed_at = core.now()
    os.execute("sleep 3")
    redis:restart()
    local back_at = core.now()
    local sum, errs = finish(clients)
    assert.same({ total = 300, succeeded = 300, failed = 0, unknown = 0 }, sum)
    for i, e in ipairs(errs) do
      -- (each store once: the rate limits, the decisions)
      assert.equal(2, count_lines(e, "^streamctl: Redis at 127%.0%.0%.1:%d+ failed"), "client " .. i .. "'s notices:\n" .. e)
      assert.equal(2, count_lines(e, "^streamctl: Redis at 127%.0%.0%.1:%d+ answers again"), "client " .. i .. "'s notices:\n" .. e)
      -- (restarted without its data: the schedule is gone, which is said, and waited out)
      assert.equal(1, count_lines(e, "^streamctl: Redis at 127%.0%.0%.1:%d+ lost the shared rate%-limit schedule of "
        .. "aliyun:" .. emu.aliyun_uid("LTAIemulatorKey") .. ": its key is gone"), "client " .. i .. "'s notices:\n" .. e)
      assert.equal(5, count_lines(e, "."), "client " .. i .. " said more:\n" .. e)
    end
    -- (While Redis was down, each process at its share (rate / nodes), together under the cap; after
    -- it came back, the shared budget: asserted in virtual time, spec/engine/11-store-time, "Redis
    -- killed mid-run". Here: zero throttled, below.)
    local entries = log_of("aliyun", "ResumeLiveStream")
    if os.getenv("SPEC_DEBUG") then
      for _, e in ipairs(entries) do
        io.stderr:write(string.format("%8.3f %s %s\n", e.real_time - t0, e.verdict, e.params.StreamName or ''))
      end
      io.stderr:write(string.format("killed %.3f back %.3f\n", killed_at - t0, back_at - t0))
    end
    local c = emulator:state().aliyun.counters.ResumeLiveStream
    assert.equal(300, c.accepted)
    assert.equal(0, c.throttled or 0)
  end)
end)
