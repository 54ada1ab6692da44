-- tier: unit
-- sanitizers: none (its C, random ids and a refused connection, is under valgrind in spec/base/01 and spec/transports/05)
-- Issue 71: tracing set up from OpenTelemetry's environment variables
-- (streamctl.trace), its samplers (streamctl.trace.sampler) and the
-- exporter's bounded queue (streamctl.trace.exporter), without a network:
-- each variable that breaks its rule refused by name, the defaults, the
-- ratio's decision the same for a trace id everywhere, a full queue's
-- drops counted in the metrics.
local trace = require "streamctl.trace"
local sampler = require "streamctl.trace.sampler"
local exporter = require "streamctl.trace.exporter"
local spanrecord = require "streamctl.base.spanrecord"

local function env(t) return function(k) return t[k] end end
local BASE = { OTEL_EXPORTER_OTLP_ENDPOINT = "http://127.0.0.1:4318/" }
local function with(t)
  local e = {}
  for k, v in pairs(BASE) do e[k] = v end
  for k, v in pairs(t) do e[k] = v end
  return env(e)
end

describe("streamctl.trace.from_env", function()
  it("no tracer unless an endpoint is set, or when the SDK is disabled", function()
    for _, e in ipairs { env {}, with { OTEL_SDK_DISABLED = "TRUE" } } do
      local t, why = trace.from_env { getenv = e }
      assert.same({ nil, nil }, { t, why })
    end
    assert.is_table(trace.from_env { getenv = with { OTEL_SDK_DISABLED = "false" } })
  end)

  it("the endpoints, headers, resource and defaults as the specification names them", function()
    local t = trace.from_env { getenv = with { OTEL_EXPORTER_OTLP_HEADERS = "api-key=a%20b, x-team = live",
      OTEL_RESOURCE_ATTRIBUTES = "service.name=from-resource,deployment.environment=prod" },
      service_name = "streamctl" }
    assert.same({ "http://127.0.0.1:4318/v1/traces", "http/protobuf", 10000, 2048, 512, 5 },
      { t.endpoint, t.protocol, t.timeout_ms, t.max_queue, t.max_batch, t.interval })
    assert.same({ ["api-key"] = "a b", ["x-team"] = "live" }, t.headers)
    assert.same({ "from-resource", "prod", "streamctl", "lua" }, { t.resource["service.name"],
      t.resource["deployment.environment"], t.resource["telemetry.sdk.name"], t.resource["telemetry.sdk.language"] })
    t = trace.from_env { getenv = with { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "https://collector:4318/custom",
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL = "http/json", OTEL_EXPORTER_OTLP_PROTOCOL = "http/protobuf",
      OTEL_SERVICE_NAME = "nightly", OTEL_RESOURCE_ATTRIBUTES = "service.name=other",
      OTEL_EXPORTER_OTLP_TIMEOUT = "2500", OTEL_BSP_MAX_QUEUE_SIZE = "10", OTEL_BSP_MAX_EXPORT_BATCH_SIZE = "3",
      OTEL_BSP_SCHEDULE_DELAY = "250" }, service_name = "streamctl" }
    assert.same({ "https://collector:4318/custom", "http/json", 2500, 10, 3, 0.25, "nightly" },
      { t.endpoint, t.protocol, t.timeout_ms, t.max_queue, t.max_batch, t.interval, t.resource["service.name"] })
  end)

  it("refuses a variable that breaks its rule, naming it", function()
    local cases = {
      { { OTEL_EXPORTER_OTLP_ENDPOINT = "ftp://x" }, "OTEL_EXPORTER_OTLP_ENDPOINT is 'ftp://x': it must be an http or "
        .. "https URL" },
      { { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT = "http://u:secret@c/v1/traces" }, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT "
        .. "is '...': it must not carry user information (give headers instead)" },
      { { OTEL_EXPORTER_OTLP_HEADERS = "a=b%0Ac" }, "OTEL_EXPORTER_OTLP_HEADERS: header 'a' value contains CR, LF, "
        .. "NUL or another control character" },
      { { OTEL_EXPORTER_OTLP_TRACES_HEADERS = "novalue" }, "OTEL_EXPORTER_OTLP_TRACES_HEADERS has 'novalue': each "
        .. "item must be key=value (the value percent-encoded)" },
      { { OTEL_EXPORTER_OTLP_PROTOCOL = "grpc" }, "OTEL_EXPORTER_OTLP_PROTOCOL is 'grpc': it must be http/protobuf "
        .. "or http/json (OTLP over gRPC is not supported)" },
      { { OTEL_EXPORTER_OTLP_TIMEOUT = "1.5" }, "OTEL_EXPORTER_OTLP_TIMEOUT is '1.5': it must be a whole number "
        .. "from 1 to 600000" },
      { { OTEL_EXPORTER_OTLP_COMPRESSION = "gzip" }, "OTEL_EXPORTER_OTLP_COMPRESSION is 'gzip': only none is "
        .. "supported" },
      { { OTEL_BSP_MAX_QUEUE_SIZE = "0" }, "OTEL_BSP_MAX_QUEUE_SIZE is '0': it must be a whole number from 1 to "
        .. "1000000" },
      { { OTEL_TRACES_SAMPLER = "xray" }, "OTEL_TRACES_SAMPLER: sampler 'xray' is not one of always_on, always_off, "
        .. "traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio" },
      { { OTEL_TRACES_SAMPLER = "traceidratio", OTEL_TRACES_SAMPLER_ARG = "1.5" }, "OTEL_TRACES_SAMPLER: sampler "
        .. "argument '1.5' must be a ratio from 0 to 1" },
      { { OTEL_RESOURCE_ATTRIBUTES = "a=%zz" }, "OTEL_RESOURCE_ATTRIBUTES has 'a=%zz': each item must be key=value "
        .. "(the value percent-encoded)" },
    }
    for _, c in ipairs(cases) do
      local t, why = trace.from_env { getenv = with(c[1]) }
      assert.is_nil(t)
      assert.equal(c[2], why)
    end
  end)
end)

describe("streamctl.trace.sampler", function()
  local LOW, HIGH = "4bf92f3577b34da6a3c0000000000001", "4bf92f3577b34da6a3cfffffffffffff"
  it("the ratio reads the trace id's last 52 bits: the same answer for an id everywhere", function()
    local half = assert(sampler.new("traceidratio", "0.5"))
    assert.same({ true, false }, { half(LOW), half(HIGH) })
    assert.is_false(assert(sampler.new("traceidratio", "0"))(LOW))
    assert.is_true(assert(sampler.new("traceidratio", "1"))(HIGH))
    -- about the share asked of random ids (a bound wide enough never to fail by chance: 2,000 draws)
    local tc = require "streamctl.base.tracecontext"
    local tenth, n = assert(sampler.new("traceidratio", "0.1")), 0
    for _ = 1, 2000 do if tenth(tc.new_trace_id()) then n = n + 1 end end
    assert.is_true(n > 100 and n < 320, n .. " of 2000 sampled at 0.1")
  end)

  it("parent-based ones follow the parent; at a root, their own rule", function()
    local on, off = assert(sampler.new("parentbased_always_on")), assert(sampler.new("parentbased_always_off"))
    local ratio = assert(sampler.new("parentbased_traceidratio", "0.5"))
    assert.same({ true, false, true, false }, { on(HIGH), off(LOW), ratio(LOW), ratio(HIGH) })
    assert.same({ false, true, true }, { on(LOW, { sampled = false }), off(LOW, { sampled = true }),
      ratio(HIGH, { sampled = true }) })
    assert.same({ true, false, false }, { on(LOW, { sampled = true }), off(HIGH, { sampled = false }),
      ratio(LOW, { sampled = false }) })
    assert.same({ true, false }, { assert(sampler.new("always_on"))(LOW, { sampled = false }),
      assert(sampler.new("always_off"))(LOW, { sampled = true }) })
  end)
end)

describe("streamctl.trace.exporter's queue", function()
  -- (a child: a parent's; `root`: none, its trace's root)
  local function span(i, root)
    return { trace_id = string.rep("a", 32), span_id = string.format("%016x", i), name = "x", kind = "client",
             parent_span_id = not root and "00f067aa0ba902b7" or nil, start_time = 1, end_time = 2, attributes = {},
             events = {}, status = { code = "ok" } }
  end

  it("a full queue drops the new span, counted in stats and the metrics; nothing queued sends nothing", function()
    local counted = {}
    local metrics = { count = function(_, name, labels, n)
      counted[#counted + 1] = { name, labels.result, n }
    end }
    local e = exporter.new { endpoint = "http://127.0.0.1:1/v1/traces", max_queue = 2, metrics = metrics }
    for i = 1, 5 do e.on_span(span(i)) end
    assert.same({ queued = 2, exported = 0, dropped = { queue_full = 3, export_failed = 0, queue_full_roots = 0 } },
      e:stats())
    assert.same({ { "spans", "queue_full", 1 }, { "spans", "queue_full", 1 }, { "spans", "queue_full", 1 } },
      counted)
    local quiet = exporter.new { endpoint = "http://127.0.0.1:1/v1/traces" }
    assert.same({ queued = 0, exported = 0, dropped = { queue_full = 0, export_failed = 0, queue_full_roots = 0 } },
      quiet:shutdown(1))
    quiet.on_span(span(1)) -- (after shutdown: dropped)
    assert.same({ queue_full = 1, export_failed = 0, queue_full_roots = 0 }, quiet:stats().dropped)
  end)

  -- (issue 89: a 3,000-stream batch's root, ended last, was dropped by the queue its attempts had filled)
  for _, protocol in ipairs { "http/protobuf", "http/json" } do
    it("a trace's root is kept past the children that filled the queue, up to twice its bound (" .. protocol .. ")",
      function()
      local e = exporter.new { endpoint = "http://127.0.0.1:1/v1/traces", max_queue = 2, protocol = protocol }
      local t = spanrecord.template("Live.X", spanrecord.INTERNAL, { "a.value" }, { ["rpc.system"] = "x" })
      local function rec(root) return { t, string.rep("a", 32), "00f067aa0ba902b7", not root and "b7ad6b7169203331"
        or nil, nil, 1, 2, 1, nil, nil, nil, "v" } end
      for _ = 1, 3 do e:record(rec()) end -- (two children queued, the third dropped)
      e.on_span(span(4, true))            -- (a root as a plain span, with no parent: queued past the bound)
      e:record_root(rec(true))            -- (four queued: a root's bound, twice the queue's)
      e:record_root(rec(true))            -- (dropped, a root)
      e.on_span(span(7, true))            -- (dropped, a root)
      e:record(rec())                     -- (dropped)
      assert.same({ queued = 4, exported = 0, dropped = { queue_full = 4, export_failed = 0, queue_full_roots = 2 } },
        e:stats())
      if e.put_root then -- (protobuf: the queue's own, the slots as arguments)
        e:put_root(table.unpack(rec(true), 1, 12))
        assert.same({ queue_full = 5, export_failed = 0, queue_full_roots = 3 }, e:stats().dropped)
      end
    end)
  end

  it("with protobuf, its record and put are the queue's own: drops counted by stats and the next flush", function()
    local counted = {}
    local metrics = { count = function(_, name, labels, n) counted[#counted + 1] = { name, labels.result, n } end }
    local e = exporter.new { endpoint = "http://127.0.0.1:1/v1/traces", max_queue = 2, metrics = metrics }
    local t = spanrecord.template("Live.X", spanrecord.CLIENT, { "a.value" }, { ["rpc.system"] = "x" })
    local slots = { t, string.rep("a", 32), "00f067aa0ba902b7", nil, nil, 1, 2, 1, nil, nil, nil, "v" }
    e:record(slots)
    e:put(table.unpack(slots, 1, 12))
    e:put(table.unpack(slots, 1, 12))
    e:record(slots)
    assert.same({}, counted) -- (not yet: the queue counts them)
    assert.same({ queued = 2, exported = 0, dropped = { queue_full = 2, export_failed = 0, queue_full_roots = 0 } },
      e:stats())
    assert.same({ { "spans", "queue_full", 2 } }, counted)
    e:record(slots)
    e:flush(0.001) -- (a closed port: both queued spans fail to export)
    assert.same({ { "spans", "queue_full", 2 }, { "spans", "queue_full", 1 } }, { counted[1], counted[2] })
    e:shutdown(0.001)
    e:put(table.unpack(slots, 1, 12)) -- (after shutdown: dropped)
    assert.same({ queue_full = 4, export_failed = 2, queue_full_roots = 0 }, e:stats().dropped)
  end)

  it("a batch the encoder refuses is dropped and said; the exporter goes on", function()
    local e = exporter.new { endpoint = "http://127.0.0.1:1/v1/traces", protocol = "http/json", max_batch = 1 }
    local bad = span(1)
    bad.attributes = { x = {} } -- (a table: no attribute value)
    e.on_span(bad)
    e.on_span(span(2))
    local stats = e:flush(1)
    assert.same({ 0, 1, 1 }, { stats.exported, stats.dropped.export_failed, stats.queued })
    assert.truthy(stats.last_error:find("spans[1].attributes[\"x\"] must be a string, number or boolean", 1, true),
      stats.last_error)
    -- (the next flush sends the rest: to a closed port, its failure said in turn)
    stats = e:flush(1)
    assert.same({ 2, 0 }, { stats.dropped.export_failed, stats.queued })
    assert.truthy(stats.last_error:find("127.0.0.1", 1, true), stats.last_error)
  end)

  it("refuses options that break their rules, naming them", function()
    assert.has_error(function() exporter.new { endpoint = "file:///tmp/x" } end,
      "option 'endpoint' must be an http or https URL")
    assert.has_error(function() exporter.new { endpoint = "http://c/v1/traces", protocol = "grpc" } end,
      "option 'protocol' must be http/protobuf or http/json (OTLP over gRPC is not supported)")
    assert.has_error(function() exporter.new { endpoint = "http://c/v1/traces", metrics = {} } end,
      "option 'metrics' must be an object with methods 'count' (it has no 'count')")
    assert.has_error(function() exporter.new {} end, "option 'endpoint' is required")
  end)
end)
