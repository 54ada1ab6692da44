-- Small helpers shared by the unit specs.
local assert = require "luassert" -- busted gives specs its assert; a required module asks for it

local M = {}

--- A shallow copy of `t` with the fields of `extra` set over it.
function M.copy(t, extra)
  local o = {}
  for k, v in pairs(t) do o[k] = v end
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

--- Waits for `fn()` to be true, asking every 20 ms for at most `seconds`
-- of real time: what `fn` returned last (truthy once it held). The one way a
-- spec waits for a server, a process or a timer: on the condition, never a
-- fixed sleep, so a busy machine only makes it wait longer.
-- @tparam function fn the condition
-- @tparam number seconds the most it waits on an idle machine, in a plain run
-- (scaled by spec.helpers.process.patience: busier, slower, longer)
function M.wait_until(fn, seconds)
  local socket = require "socket"
  local deadline = socket.gettime() + require("spec.helpers.process").patience(seconds)
  local v = fn()
  while not v and socket.gettime() < deadline do
    socket.sleep(0.02)
    v = fn()
  end
  return v
end

--- A clock the spec moves by hand: `c.now()` returns `c.t`.
function M.fake_clock(t)
  local c = { t = t or 0 }
  function c.now() return c.t end
  return c
end

--- A client of `mod` (streamctl.aliyun or streamctl.zego) with test
-- credentials whose transport answers with `script(request, n)` (n counts
-- the requests), a wall clock at `now` + the monotonic one, and a fake
-- monotonic clock moved only by sleeping; `opts` adds or replaces options.
-- @return client, w (`w.sent`: the requests in order; `w.mono`: the clock)
function M.scripted_client(mod, now, opts, script)
  local w = { sent = {}, mono = 0 }
  local o = {
    clock = function() return now + w.mono end, monotonic = function() return w.mono end,
    sleep = function(s) w.mono = w.mono + s end,
    transport = function(req)
      w.sent[#w.sent + 1] = req
      return script(req, #w.sent)
    end,
    retry = { random = function() return 0 end },
  }
  if mod == require("streamctl.aliyun") then
    o.access_key_id, o.access_key_secret = "AK", "sk"
  else
    o.app_id, o.server_secret = 1234567890, "0123456789abcdef0123456789abcdef"
  end
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(mod.new(o)), w
end

--- A response for a scripted transport.
function M.reply(status, body, headers)
  return { status = status, headers = headers or {}, body = body }
end

--- Asserts that `fn` raises an error mentioning `fragment`, blamed on the
-- spec file `file` (so argument errors point at the caller's line).
function M.raises(fn, fragment, file)
  local ok, err = pcall(fn)
  assert.is_false(ok, "expected an error")
  err = tostring(err)
  assert.truthy(err:find(fragment, 1, true), "error '" .. err .. "' lacks '" .. fragment .. "'")
  assert.truthy(err:find(file, 1, true), "error not blamed on the caller: " .. err)
end

--- Asserts that a constructor's results (`...`) are nil and the
-- InvalidParameter error object whose message is `message`: a bad option,
-- an expected failure (streamctl.base.errors' convention).
function M.refused(message, ...)
  local obj, err = ...
  assert.is_nil(obj)
  assert.equal("InvalidParameter", err.code)
  assert.equal("validation", err.kind)
  assert.equal(message, err.message)
  assert.equal("streamctl: InvalidParameter: " .. message, tostring(err))
end

--- The rate of arrivals while they were paced (`entries` sorted by arrival):
-- a gap longer than five intervals of `cap` is a stall, the machine's (a
-- descheduled process under 8 spec files on 2 cores), not the pacing's, and
-- its time is left out. Returns the rate and the stalls. A pacing bug still
-- shows: a slower schedule in the rate, a pause at every call in the stalls.
function M.steady_rate(entries, cap)
  if #entries < 2 then return 0, 0 end
  local span, stalls, limit = entries[#entries].real_time - entries[1].real_time, 0, 5 / cap
  for i = 2, #entries do
    local gap = entries[i].real_time - entries[i - 1].real_time
    if gap > limit then
      span = span - gap
      stalls = stalls + 1
    end
  end
  return span > 0 and (#entries - 1 - stalls) / span or 0, stalls
end

--- The most of a list's times (ascending) within any one second, [t, t + 1):
-- the view of a sliding window's cap. `key`: the field holding each time
-- (nil: the list is of numbers).
function M.densest_second(list, key)
  local most, j = 0, 1
  for i = 1, #list do
    local t = key and list[i][key] or list[i]
    while t - (key and list[j][key] or list[j]) >= 1 do j = j + 1 end
    if i - j + 1 > most then most = i - j + 1 end
  end
  return most
end

--- The items of a list whose time (`key` as above) is in [from, to), in order.
function M.between(list, key, from, to)
  local out = {}
  for _, x in ipairs(list) do
    local t = key and x[key] or x
    if t >= from and t < to then out[#out + 1] = x end
  end
  return out
end

--- Per second over a list's times (ascending, `key` as above): (n - 1) /
-- (last - first); 0 for fewer than two.
function M.rate_of(list, key)
  if #list < 2 then return 0 end
  local first, last = key and list[1][key] or list[1], key and list[#list][key] or list[#list]
  return (#list - 1) / (last - first)
end

--- A file stand-in that keeps what is written (`write`, `flush`), for the
-- command's stdout and stderr in this process: `b:text()` gives it back.
function M.buffer()
  local b = { parts = {} }
  function b.write(self, ...)
    for i = 1, select("#", ...) do self.parts[#self.parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b.flush() return true end
  function b.text(self) return table.concat(self.parts) end
  return b
end

--- No signal caught, ever: the command's signal watcher in this process.
M.NO_SIGNALS = { catch = function() end, caught = function() return nil end }

--- Runs the command line `argv` in this process, the one harness of the
-- specs that do (its output in buffers, nothing of the process's own
-- environment read): the exit status, standard output and standard error.
-- A raise fails the row. `o`: `home` (HOME; USER is "tester"), `env` (more
-- variables by name), `getenv` (all of them, instead), `stdin` (a string
-- read whole, a file-like table, or nil: nothing), `signal` (default:
-- none caught), `clock` (the command's and its client's, Unix seconds),
-- `monotonic` (the clients' monotonic clock, which times attempts).
-- @tparam table argv the arguments after `streamctl`
-- @tparam[opt] table o as above
function M.run_cli(argv, o)
  o = o or {}
  local out, err = M.buffer(), M.buffer()
  local stdin = o.stdin
  if type(stdin) == "string" then
    local text = stdin
    stdin = { read = function() local t = text text = nil return t end,
              lines = function() return text:gmatch("[^\n]+") end }
  elseif stdin == nil then
    stdin = { read = function() return nil end, lines = function() return function() end end }
  end
  local getenv = o.getenv or function(name)
    if name == "HOME" then return o.home end
    if name == "USER" then return "tester" end
    return o.env and o.env[name]
  end
  local ok, status = pcall(require("streamctl.cli").main, argv, { stdout = out, stderr = err, getenv = getenv,
    signal = o.signal or M.NO_SIGNALS, stdin = stdin, clock = o.clock, monotonic = o.monotonic })
  assert(ok, "raised: " .. tostring(status))
  return status, out:text(), err:text()
end

--- An argv of words and lists of words, flattened: `argv_of("aliyun", { "--x", "1" }, "call")`.
function M.argv_of(...)
  local out = {}
  for i = 1, select("#", ...) do
    local part = select(i, ...)
    if type(part) ~= "table" then part = { part } end
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

--- The lines of a text, empty ones left out.
function M.lines(text)
  local out = {}
  for l in text:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

--- The command in this process, against the emulator `server`, with HOME
-- at `home` and USER "tester" (or `getenv`): `run(argv[, signal[, getenv]])`
-- gives the exit status, standard output and standard error (a raise fails the spec);
-- `al(...)` and `zg(...)` are the argv of a subcommand with the emulator's
-- endpoint and accounts after it.
function M.cli(server, home)
  local c = {}
  function c.run(argv, signal, getenv)
    return M.run_cli(argv, { signal = signal, getenv = getenv, home = home })
  end
  local function with(provider, tail, ...)
    local argv = { provider, ... }
    for _, a in ipairs(tail()) do argv[#argv + 1] = a end
    return argv
  end
  function c.al(...)
    return with("aliyun", function() return { "--endpoint", server().aliyun_url, "--access-key-id", "LTAIemulatorKey",
      "--access-key-secret", "emulator-secret" } end, ...)
  end
  function c.zg(...)
    return with("zego", function() return { "--endpoint", server().zego_url, "--app-id", "1234567890",
      "--server-secret", "0123456789abcdef0123456789abcdef" } end, ...)
  end
  return c
end

return M
