-- tier: unit
-- The deterministic simulation (spec/sim, docs/simulation.md): a small set
-- of seeds under every invariant, the seeds that found bugs, replays that
-- give the same run, and checks shown to catch what they exist for.
-- Issue 47 (the simulation draws dirty input): invariants 11 (only what the
-- input asked for) and 12 (a closed output stops sending) held over the
-- operator's seeds 1..150 and shown to catch the library's readings made
-- loose, and seed 248's finding (a file cut at a block's end) pinned.
local root = os.getenv("STREAMCTL_ROOT") or "."
package.path = root .. "/spec/?.lua;" .. root .. "/spec/?/init.lua;" .. package.path
local sim = require "sim"
local invariants = require "sim.invariants"

-- A failing seed's schedule, as the generator drew it then (spec/sim/regressions).
local function pinned(seed)
  return dofile(root .. "/spec/sim/regressions/" .. seed .. ".lua")
end

local function digest(rec)
  local parts = {}
  for _, s in ipairs(rec.sends) do
    parts[#parts + 1] = string.format("%.6f %s %s %s", s.t, s.process, s.req.url, tostring(s.fault))
  end
  return table.concat(parts, "\n")
end

describe("simulation", function()
  it("holds every invariant over seeds 1..300", function()
    for seed = 1, 300 do
      local failures = invariants.check(sim.run(sim.generate(seed)))
      assert.same({}, failures, "seed " .. seed)
    end
  end)

  -- Seed 304: a job waiting to verify its success after an earlier attempt
  -- whose outcome was unknown, cancelled, was reported "not sent" and
  -- failed although it had been applied (runner.lua's cancel_rest).
  it("regression: seed 304 (an interrupted verification is sent and unknown)", function()
    local rec = sim.run(pinned(304))
    assert.same({}, invariants.check(rec))
    local found = false
    for _, op in ipairs(rec.ops) do
      for _, e in ipairs(op.entries or {}) do
        if e.code == "Interrupted" and e.outcome_unknown then found = true end
      end
    end
    assert.is_true(found, "seed 304 no longer interrupts a verification: pick another seed")
  end)

  -- Seed 18: an operation started from a batch's on_progress on a stream
  -- whose job in the batch had not finished ran beside it and could land
  -- first (the engine now drives the enclosing run's jobs from the nested
  -- run and holds the nested job behind them).
  it("regression: seed 18 (a nested operation waits for the enclosing batch's job on its stream)", function()
    assert.same({}, invariants.check(sim.run(pinned(18))))
  end)

  -- Seed 3747: a ZEGO CDN resume delivered after its timeout landed after the
  -- forbid that followed it (CDN actions have no Sequence and no look-up:
  -- such a call now waits until an earlier unknown attempt has settled).
  it("regression: seed 3747 (a CDN call waits for an unknown attempt on its stream to settle)", function()
    local rec = sim.run(pinned(3747))
    assert.same({}, invariants.check(rec))
    assert.equal("forbidden", rec.model:state("zego:" .. sim.APP_ID .. ":cdn:zegotest-" .. sim.APP_ID .. "-p1-s11"))
  end)

  -- Seed 257: a CDN call held for its stream to settle at a time a
  -- billionth of a second ahead spun in the engine's send loop for ever (the
  -- clock stood still); a wait within EPSILON now counts as none.
  it("regression: seed 257 (a settle wait within EPSILON does not spin)", function()
    local rec = sim.run(pinned(257))
    assert.is_true(rec.ok, rec.why)
    assert.same({}, invariants.check(rec))
  end)

  describe("the operator's layer (spec/sim/operator.lua)", function()
    local operator = require "sim.operator"

    local function failures_over(first, last)
      local got = {}
      for seed = first, last do
        for _, f in ipairs(operator.run(seed)) do got[#got + 1] = { seed = seed, invariant = f.invariant } end
      end
      return got
    end

    local function has(list, n)
      for _, f in ipairs(list) do if f.invariant == n then return true end end
      return false
    end

    it("holds invariants 7 to 12 over seeds 1..150, with runs killed, power lost, the disk full and dirty input",
      function()
      local before = {}
      for k, v in pairs(operator.stats) do before[k] = v end
      assert.same({}, failures_over(1, 150))
      local st = operator.stats
      -- the workload did what it is there for
      assert.is_true(st.kills - before.kills > 60, "kills")
      assert.is_true(st.power_losses - before.power_losses > 20, "power losses")
      assert.is_true(st.cut - before.cut > 20, "writes cut short")
      assert.is_true(st.requests - before.requests > 500, "requests")
      -- (issue 47: the operator's input; seeds 1..150 draw 147 runs with names that break their rule, 33 empty or
      -- comment-only lists, 12 reconciles refused over --max-resume, 56 batches read as they go, 21 of them from a
      -- file changed after its count, 47 with standard output closed)
      assert.is_true(st.dirty - before.dirty > 100, "runs with names that break their rule")
      assert.is_true(st.empty - before.empty > 20, "empty or comment-only lists")
      assert.is_true(st.over_resume - before.over_resume > 5, "reconciles refused over --max-resume")
      assert.is_true(st.streamed - before.streamed > 30, "batches read as they go")
      assert.is_true(st.changed - before.changed > 10, "files changed between their reads")
      assert.is_true(st.closed - before.closed > 20, "outputs closed")
      assert.equal(st.runs - before.runs, st.checks - before.checks)
    end)

    -- 11's teeth: the library's own readings made loose, each caught.
    local function caught_with(patch, first, last, n)
      local restore = patch()
      local ok, got = pcall(failures_over, first, last)
      restore()
      assert.is_true(ok, tostring(got))
      assert.is_true(has(got, n), "invariant " .. n .. " did not fail over seeds " .. first .. ".." .. last)
    end

    -- (the same, with `mod[key]` replaced by `make(real)`)
    local function caught_replacing(mod, key, make, first, last, n)
      caught_with(function()
        local real = mod[key]
        mod[key] = make(real)
        return function() mod[key] = real end
      end, first, last, n)
    end

    it("11 has teeth: a desired list taken as far as it goes (its lines that break a rule dropped)", function()
      caught_replacing(require "streamctl.operator.reconcile", "parse", function(real)
        return function(provider, text, name)
          local kept = {}
          for line in text:gmatch("([^\n]*)\n?") do
            if real(provider, line, name) then kept[#kept + 1] = line end
          end
          return real(provider, table.concat(kept, "\n"), name)
        end
      end, 1, 40, 11)
    end)

    it("11 has teeth: a guard that confirms every run (forbids and resumes over their limits sent)", function()
      caught_replacing(require "streamctl.operator.audit", "guard", function(real)
        return function(n, o)
          o = o or {}
          o.confirm = true
          return real(n, o)
        end
      end, 1, 40, 11)
    end)

    it("11 has teeth: a file read twice whose blocks all compare equal (a change after the count sent)", function()
      caught_replacing(require "streamctl.core", "sha256_hex", function()
        return function() return "the same" end
      end, 1, 150, 11)
    end)

    it("12 has teeth: a failed write to standard output that does not stop the batch", function()
      local Out = getmetatable(require("streamctl.cli.output").new_out({}, {}))
      caught_with(function()
        local line, flush = Out.line, Out.flush
        Out.line = function(self, ...)
          self.out:write(...)
          return true
        end
        Out.flush = function() return true end
        return function() Out.line, Out.flush = line, flush end
      end, 1, 40, 12)
    end)

    -- The simulation's finding (seed 248, docs/simulation.md): a file cut
    -- short at a block's end between the count and the sending handed out
    -- its last line, the rest of a name ("x" of "x-3"), which was forbidden;
    -- the second read now stops there, with the end's message.
    it("regression: seed 248 (a file cut at a block's end: no part of a name is sent)", function()
      local input = require "streamctl.cli.input"
      local lookahead, block = input.LOOKAHEAD, input.BLOCK
      input.LOOKAHEAD, input.BLOCK = 3, 5
      local text = "x-1\nx-2\nx-3\nx-4\nx-5\n"
      local pos, rewinds = 1, 0
      local f = { close = function() return true end, setvbuf = function() return true end }
      function f.read(_, n)
        if pos > #text then return nil end
        local b = text:sub(pos, pos + n - 1)
        pos = pos + #b
        return b
      end
      function f.seek(_, whence, off)
        if whence == "set" then
          rewinds = rewinds + 1
          if rewinds == 2 then text = text:sub(1, 10) end -- (cut after "x-1\nx-2\nx-": two blocks of 5)
          pos = (off or 0) + 1
        end
        return pos - 1
      end
      local ok, list = pcall(input.open, "-", f, {})
      local names = {}
      while ok and list and list.streamed do
        local name = list.names()
        if not name then break end
        names[#names + 1] = name
      end
      input.LOOKAHEAD, input.BLOCK = lookahead, block
      assert.is_true(ok, tostring(list))
      assert.equal(5, list.count)
      assert.same({ "x-1", "x-2" }, names)
      assert.equal("--from: standard input changed while it was read: it ends at byte 10, where 20 bytes were "
        .. "counted before sending", list.error)
      assert.same({}, operator.run(248))
    end)

    it("7 has teeth: an intent written without fdatasync", function()
      local audit = require "streamctl.operator.audit"
      local real = audit.writer
      audit.writer = function(path, opts)
        local w, x = real(path, opts)
        return w and function(line) return w(line, false) end, x
      end
      local ok, got = pcall(failures_over, 1, 20)
      audit.writer = real
      assert.is_true(ok, tostring(got))
      assert.is_true(has(got, 7))
    end)

    it("8 has teeth: a state store whose saves do not reach the disk", function()
      local reconcile = require "streamctl.operator.reconcile"
      local real = reconcile.file_store
      reconcile.file_store = function(path)
        local store = real(path)
        store.set = function() return true end
        return store
      end
      local ok, got = pcall(failures_over, 1, 20)
      reconcile.file_store = real
      assert.is_true(ok, tostring(got))
      assert.is_true(has(got, 8))
    end)

    it("10 has teeth: a backoff ten times too short", function()
      local refresh = require "streamctl.credentials.refresh"
      local real = refresh.RETRY_MIN_S
      refresh.RETRY_MIN_S = real / 10
      local ok, got = pcall(failures_over, 1, 40)
      refresh.RETRY_MIN_S = real
      assert.is_true(ok, tostring(got))
      assert.is_true(has(got, 10))
    end)

    it("9 has teeth (make sim's Aliyun runs with a refresh holder): a request signed after its key expired", function()
      local rec
      for seed = 1, 200 do
        local r = sim.run(sim.generate(seed))
        if r.schedule.credentials and #r.model.arrivals > 0 then rec = r break end
      end
      assert.truthy(rec, "no seed in 1..200 signs with a refresh holder")
      assert.same({}, invariants.check(rec))
      local n = 0
      for _, a in ipairs(rec.model.arrivals) do if a.key_expires then n = n + 1 end end
      assert.equal(#rec.model.arrivals, n)
      rec.model.arrivals[1].key_expires = rec.model.arrivals[1].key_expires - 100000
      local f = invariants.check(rec)
      assert.equal(9, f[1] and f[1].invariant)
    end)
  end)

  it("10 has teeth in make sim's holder runs: a source asked again at once after a stale answer", function()
    local rec, name, at
    for seed = 1, 300 do
      local r = sim.run(sim.generate(seed))
      for n, log in pairs(r.fetches or {}) do
        for i = 2, #log do
          if log[i - 1].bad then rec, name, at = r, n, i break end
        end
        if rec then break end
      end
      if rec then break end
    end
    assert.truthy(rec, "no seed in 1..300 has a fetch after a stale or failed one")
    assert.same({}, invariants.check(rec))
    rec.fetches[name][at].at = rec.fetches[name][at - 1].at + 0.01
    local f = invariants.check(rec)
    assert.equal(10, f[1] and f[1].invariant)
  end)

  it("replays a seed exactly", function()
    for _, seed in ipairs { 7, 52, 304 } do
      assert.equal(digest(sim.run(sim.generate(seed))), digest(sim.run(sim.generate(seed))))
    end
  end)

  describe("the checks have teeth", function()
    local function find_run(pred)
      for seed = 1, 200 do
        local rec = sim.run(sim.generate(seed))
        if pred(rec) then return rec end
      end
      error("no seed in 1..200 fits")
    end

    it("1: an extra request inside a full second", function()
      local rec = find_run(function(r) return r.schedule.provider == "aliyun" and #r.model.arrivals > 40 end)
      assert.same({}, invariants.check(rec))
      local a = rec.model.arrivals
      -- 21 copies of one ForbidLiveStream arrival within a second
      local base
      for _, x in ipairs(a) do if x.action == "ForbidLiveStream" then base = x break end end
      for i = 1, 21 do
        local c = {}
        for k, v in pairs(base) do c[k] = v end
        c.t = base.t + i * 0.01
        table.insert(a, c)
      end
      table.sort(a, function(x, y) return x.t < y.t end)
      rec.schedule.net.jitter, rec.schedule.net.faulty, rec.schedule.redis.events = 0, false, {}
      local f = invariants.check(rec)
      assert.equal(1, f[1] and f[1].invariant)
    end)

    it("2: a stream left in another state than the last OK asked", function()
      local rec = find_run(function(r) return r.schedule.provider == "aliyun" and #r.model.changes > 0 end)
      assert.same({}, invariants.check(rec))
      local last = rec.model.changes[#rec.model.changes]
      rec.model.streams[last.stream] = last.state == "forbidden" and "normal" or "forbidden"
      local f = invariants.check(rec)
      assert.equal(2, f[1] and f[1].invariant)
    end)

    it("4: a stream reported twice", function()
      local rec = find_run(function(r)
        for _, op in ipairs(r.ops) do if op.kind == "batch" and #op.entries > 1 then return true end end
      end)
      for _, op in ipairs(rec.ops) do
        if op.kind == "batch" and #op.entries > 1 then op.entries[2] = op.entries[1] break end
      end
      local f = invariants.check(rec)
      local got = false
      for _, x in ipairs(f) do if x.invariant == 4 then got = true end end
      assert.is_true(got)
    end)
  end)
end)
