-- sanitizers: none (promtool and Lua read text files here; none of our C does work in this process)
-- monitoring/: the Prometheus alert rules and the Grafana dashboard for
-- streamctl.operator.metrics' series, checked:
--   * `promtool check rules` accepts the rules and `promtool test rules` runs
--     their tests (monitoring/streamctl-alerts.test.yml: each alert fired by
--     a series, not by another, and not before its `for:`);
--   * every metric the rules, their tests' series and the dashboard's
--     expressions name is one that `render()` of a Metrics fed attempts,
--     events and places emits; every streamctl_ word in those files is one;
--   * each alert has its `for:`, a severity and what to do; the dashboard has
--     its data source, provider and action variables, and a panel for each
--     family it exists to show, each expression parsed by promtool.
-- Each checker is shown catching what it is for, on planted text: a metric
-- that does not exist, a threshold that fires on the wrong series, a rule
-- that misses a new series, an alert without `for:`.
local process = require "spec.helpers.process"
local metrics_mod = require "streamctl.operator.metrics"
local lyaml = require "lyaml"
local cjson = require "cjson"

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
local DIR = ROOT .. "/monitoring"
local q = process.quote

local function read(path) return assert(process.read_file(path), "cannot read " .. path) end

-- A sorted list of a set's keys.
local function sorted(set)
  local list = {}
  for k in pairs(set) do list[#list + 1] = k end
  table.sort(list)
  return list
end

-- The metric names a PromQL expression selects. PromQL is parsed by
-- Prometheus' Go code alone (no Debian package parses it, and promtool checks
-- syntax without listing selectors), so a small scan, enough for selectors:
-- strings, label matchers, ranges and grouping label lists taken out, the
-- words left that are neither a function called nor a keyword.
local KEYWORDS = {}
for w in ("and or unless by without on ignoring group_left group_right bool offset inf nan"):gmatch("%S+") do
  KEYWORDS[w] = true
end
local function metric_names(expr, into)
  local names = into or {}
  local s = expr:gsub("\\.", ""):gsub('"[^"]*"', '""'):gsub("'[^']*'", "''"):gsub("`[^`]*`", "")
  s = s:gsub("%b{}", " "):gsub("%b[]", " ")
  for _, kw in ipairs { "by", "without", "on", "ignoring", "group_left", "group_right" } do
    s = s:gsub("%f[%w_]" .. kw .. "%s*%b()", " ")
  end
  s = s:gsub("%f[%w_]offset%s+%-?[%w%.]+", " ")
  for name, after in s:gmatch("%f[%w_:.]([%a_:][%w_:]*)()") do
    if not s:find("^%s*%(", after) and not KEYWORDS[name:lower()] then names[name] = true end
  end
  return names
end

-- The sample names `text` (the Prometheus text format) has.
local function sample_names(text)
  local names = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) ~= "#" then names[assert(line:match("^([%a_:][%w_:]*)"), line)] = true end
  end
  return names
end

-- What a Metrics renders once fed an attempt of each kind, each event counter,
-- an admission's time and a places check's places: every series it has.
local function emitted()
  local m = metrics_mod.new()
  m:observe { provider = "aliyun", action = "ForbidLiveStream", role = "call", ok = false, retry = false,
              throttled = true, code = "Throttling.User", seconds = 0.01, waited = 0, room = 24, cap = 30 }
  m:observe { provider = "aliyun", action = "ForbidLiveStream", role = "call", ok = true, retry = true,
              after_code = "Throttling.User", seconds = 0.02, waited = 0.04, room = 24, cap = 30 }
  m:observe { provider = "aliyun", action = "DescribeLiveStreamsBlockList", role = "lookup", ok = true,
              retry = false, after_code = "Timeout", seconds = 0.01, waited = 0 }
  m:count("callbacks", { provider = "aliyun", event = "publish", result = "ReplayedCallback" })
  m:count("reactions", { provider = "aliyun", reaction = "forbid_again", result = "ok" })
  m:count("drift", { provider = "aliyun", state = "found" })
  m:count("admissions", { provider = "aliyun", verdict = "deny", code = "Forbidden" })
  m:count("tokens", { provider = "zego", result = "issued" })
  m:count("spans", { result = "queue_full" }, 3)
  m:admission_time("aliyun", 0.001)
  assert(m:places_left("aliyun", { used = 9950, limit = 10000, needed = 2, domains = 3 }))
  return sample_names(m:render())
end
local EMITTED = emitted()

-- The names in `used` that are not emitted, sorted.
local function unknown(used)
  local out = {}
  for _, name in ipairs(sorted(used)) do
    if not EMITTED[name] then out[#out + 1] = name end
  end
  return out
end

-- Every streamctl_ word of `text` (expressions, descriptions, comments), as a set.
local function streamctl_words(text)
  local words = {}
  for w in text:gmatch("%f[%w_]streamctl_[%w_]*") do words[w] = true end
  return words
end

-- The rules' alerts (lyaml's reading of the file's text).
local function alerts_of(text)
  local out = {}
  for _, group in ipairs(lyaml.load(text).groups) do
    for _, rule in ipairs(group.rules) do
      if rule.alert then out[#out + 1] = rule end
    end
  end
  return out
end

-- The metric names of the tests' input series.
local function series_names(text)
  local names = {}
  for _, t in ipairs(lyaml.load(text).tests) do
    for _, s in ipairs(t.input_series) do names[assert(s.series:match("^([%a_:][%w_:]*){"), s.series)] = true end
  end
  return names
end

-- What each alert lacks of the house's rules: its `for:`, a severity, a summary and a description.
local SEVERITIES = { critical = true, warning = true, info = true }
local function flaws(alerts)
  local out = {}
  for _, a in ipairs(alerts) do
    local ann = a.annotations or {}
    if type(a["for"]) ~= "string" then out[#out + 1] = a.alert .. ": no for:" end
    if not SEVERITIES[(a.labels or {}).severity] then out[#out + 1] = a.alert .. ": no severity" end
    if type(ann.summary) ~= "string" or type(ann.description) ~= "string" or #ann.description < 80 then
      out[#out + 1] = a.alert .. ": no summary, or no description of what to do"
    end
  end
  return out
end

-- promtool's verdict on `args` in `dir`: the exit status and what it printed.
local function promtool(dir, args)
  local out = process.capture("cd " .. q(dir) .. " && promtool " .. args .. " 2>&1; echo \"rc=$?\"")
  return tonumber(out:match("rc=(%d+)%s*$")), (out:gsub("rc=%d+%s*$", ""))
end

-- A directory holding the rules (changed by `edit`, a function of their text) and their tests.
local function planted(edit)
  local dir = process.temp_dir()
  process.write_file(dir .. "/streamctl-alerts.yml", edit(read(DIR .. "/streamctl-alerts.yml")))
  process.write_file(dir .. "/streamctl-alerts.test.yml", read(DIR .. "/streamctl-alerts.test.yml"))
  return dir
end

-- `text` with `old` (plain text, there exactly once) replaced by `new`.
local function replace_once(text, old, new)
  local from, to = text:find(old, 1, true)
  assert(from and not text:find(old, to + 1, true), "not there exactly once: " .. old)
  return text:sub(1, from - 1) .. new .. text:sub(to + 1)
end

-- The dashboard's expressions (every target's) and its variables' queries.
local function dashboard_exprs(d)
  local exprs = {}
  for _, p in ipairs(d.panels) do
    for _, t in ipairs(p.targets or {}) do exprs[#exprs + 1] = t.expr end
  end
  return exprs
end

-- The names a dashboard uses: its expressions' and its label_values queries' selectors.
local function dashboard_names(d)
  local names = {}
  for _, e in ipairs(dashboard_exprs(d)) do metric_names(e, names) end
  for _, v in ipairs(d.templating.list) do
    if v.type == "query" then
      local selector = assert(v.definition:match("^label_values%((.-),%s*[%w_]+%)$"), v.definition)
      metric_names(selector, names)
    end
  end
  return names
end

describe("monitoring/", function()
  local rules_text = read(DIR .. "/streamctl-alerts.yml")
  local tests_text = read(DIR .. "/streamctl-alerts.test.yml")
  local dashboard_text = read(DIR .. "/streamctl-dashboard.json")

  it("reads the metric names of an expression, and nothing else", function()
    for _, case in ipairs {
      { 'sum by (provider, action) (rate(streamctl_x_total{code=~"a|b(c)",le="0.5"}[5m])) > 0.05', "streamctl_x_total" },
      { "a / on (instance) group_left(action) b offset 10m > bool 1e-3 and c unless d or e", "a b c d e" },
      { 'histogram_quantile(0.99, sum by (le) (rate(h_bucket{p=~"$provider"}[$__rate_interval])))', "h_bucket" },
      { "x unless x offset -1h30m", "x" },
      { 'max without (job) (up{job="a\\"b"}) * on() group_right label_replace(y, "d", "$1", "s", "(.*)")', "up y" },
      { "sum(rate(x:recorded:rate5m[1m:10s]))", "x:recorded:rate5m" },
    } do
      local want = {}
      for w in case[2]:gmatch("%S+") do want[#want + 1] = w end
      assert.same(want, sorted(metric_names(case[1])), case[1])
    end
  end)

  it("the rules: promtool accepts them and their tests pass", function()
    local rc, said = promtool(DIR, "check rules streamctl-alerts.yml")
    assert.equal(0, rc, said)
    assert.truthy(said:find("SUCCESS: 7 rules found", 1, true), said)
    rc, said = promtool(DIR, "test rules streamctl-alerts.test.yml")
    assert.equal(0, rc, said)
    assert.truthy(said:find("SUCCESS", 1, true), said)
  end)

  it("the rules: an alert for each case, each with its for:, severity, and what to do; each tested", function()
    local alerts = alerts_of(rules_text)
    local names = {}
    for i, a in ipairs(alerts) do names[i] = a.alert end
    assert.same({ "StreamctlThrottled", "StreamctlRoomBelowCap", "StreamctlFailures", "StreamctlOutcomesUnknown",
                  "StreamctlBlockListPlacesLow", "StreamctlCallbackReplayed", "StreamctlSpansDropped" }, names)
    assert.same({}, flaws(alerts))
    -- each alert: an evaluation where it fires, one where nothing does (before its for:, or not its series)
    local fires, quiet = {}, {}
    for _, t in ipairs(lyaml.load(tests_text).tests) do
      for _, case in ipairs(t.alert_rule_test or {}) do
        if #(case.exp_alerts or {}) > 0 then fires[case.alertname] = true else quiet[case.alertname] = true end
      end
    end
    local tested = {}
    for _, n in ipairs(names) do
      if fires[n] and quiet[n] then tested[#tested + 1] = n end
    end
    assert.same(names, tested)
    -- the checker catches an alert without for: or without its severity
    local planted_text = replace_once(replace_once(rules_text, "        for: 15m\n", ""),
      "          severity: critical\n", "          severity: page\n")
    assert.same({ "StreamctlThrottled: no for:", "StreamctlBlockListPlacesLow: no severity" }, flaws(alerts_of(planted_text)))
  end)

  it("the rules and their tests name only metrics streamctl.operator.metrics emits", function()
    local used = {}
    for _, a in ipairs(alerts_of(rules_text)) do metric_names(a.expr, used) end
    -- (the scan finds every one: a scan that found none would pass anything)
    assert.same({ "streamctl_blocklist_places_left", "streamctl_callbacks_total", "streamctl_cap_requests_per_second",
                  "streamctl_failures_total", "streamctl_outcome_unknown_total", "streamctl_requests_total",
                  "streamctl_room_requests_per_second", "streamctl_spans_total", "streamctl_throttled_total" },
      sorted(used))
    assert.same({}, unknown(used))
    assert.same({}, unknown(series_names(tests_text)))
    assert.same({}, unknown(streamctl_words(rules_text)))
    assert.same({}, unknown(streamctl_words(tests_text)))
  end)

  it("catches a rule that names a metric that does not exist", function()
    -- a misspelt name in an expression, in a test's series, and in a description
    local bad = replace_once(rules_text, "(rate(streamctl_throttled_total[10m]))\n            /",
      "(rate(streamctl_throttles_total[10m]))\n            /")
    local used = {}
    for _, a in ipairs(alerts_of(bad)) do metric_names(a.expr, used) end
    assert.same({ "streamctl_throttles_total" }, unknown(used))
    assert.same({ "streamctl_blocklist_places" }, unknown(series_names(replace_once(tests_text,
      "'streamctl_blocklist_places_left{provider=\"aliyun\",instance=\"edge-2\"",
      "'streamctl_blocklist_places{provider=\"aliyun\",instance=\"edge-2\""))))
    assert.same({ "streamctl_throttled_code_total" }, unknown(streamctl_words(
      replace_once(rules_text, "streamctl_throttled_by_code_total says", "streamctl_throttled_code_total says"))))
    -- and promtool alone does not: it checks syntax, not what exists
    local dir = planted(function() return bad end)
    local rc, said = promtool(dir, "check rules streamctl-alerts.yml")
    process.run("rm -rf " .. q(dir))
    assert.equal(0, rc, said)
  end)

  it("the tests catch a rule that fires on the wrong series, or misses a new one", function()
    for _, case in ipairs {
      -- a threshold that takes in the edge with 9000 places left
      { "streamctl_blocklist_places_left < 500", "streamctl_blocklist_places_left < 10000", "StreamctlBlockListPlacesLow" },
      -- failures with the throttles counted: 6 of 60 throttled fire it
      { "              - sum by (provider, action) (rate(streamctl_throttled_total[10m]))\n", "", "StreamctlFailures" },
      -- a for: shorter than the test's: fires at 20m
      { "        for: 30m\n", "        for: 5m\n", "StreamctlRoomBelowCap" },
      -- without the branch for a series whose first sample is its first replay
      { '          or\n          sum by (provider, event) (\n            streamctl_callbacks_total{result="ReplayedCallback"} '
          .. "unless streamctl_callbacks_total offset 10m\n          ) > 0\n", "", "StreamctlCallbackReplayed" },
    } do
      local dir = planted(function(text) return replace_once(text, case[1], case[2]) end)
      local rc, said = promtool(dir, "test rules streamctl-alerts.test.yml")
      process.run("rm -rf " .. q(dir))
      assert.equal(1, rc, case[3] .. ": " .. said)
      assert.truthy(said:find("alertname: " .. case[3] .. ",", 1, true), said)
    end
  end)

  it("the dashboard: a current schema, its variables, and a panel for each family", function()
    local d = cjson.decode(dashboard_text)
    assert.is_true(d.schemaVersion >= 39, "schemaVersion " .. tostring(d.schemaVersion)) -- (Grafana 11 and later)
    local vars = {}
    for _, v in ipairs(d.templating.list) do vars[v.name] = v end
    assert.same({ "datasource", "prometheus" }, { vars.datasource.type, vars.datasource.query })
    assert.same({ "query", "query" }, { vars.provider.type, vars.action.type })
    local ids, titles = {}, {}
    for _, p in ipairs(d.panels) do
      assert.is_nil(ids[p.id], "panel id " .. tostring(p.id) .. " twice")
      assert.is_nil(titles[p.title], "panel title " .. tostring(p.title) .. " twice")
      ids[p.id], titles[p.title] = true, true
      assert.truthy(p.gridPos and p.gridPos.w and p.gridPos.h, p.title)
      if p.type ~= "row" then
        assert.same({ "prometheus", "${datasource}" }, { p.datasource.type, p.datasource.uid }, p.title)
        assert.truthy(#p.targets > 0, p.title)
        for _, t in ipairs(p.targets) do assert.same(p.datasource, t.datasource, p.title) end
      end
    end
    local used = dashboard_names(d)
    for _, family in ipairs {
      "streamctl_requests_total", "streamctl_throttled_by_code_total", "streamctl_room_requests_per_second",
      "streamctl_cap_requests_per_second", "streamctl_slot_wait_seconds_bucket", "streamctl_request_duration_seconds_bucket",
      "streamctl_failures_total", "streamctl_callbacks_total", "streamctl_reactions_total", "streamctl_admissions_total",
      "streamctl_blocklist_places_left", "streamctl_spans_total",
    } do
      assert.truthy(used[family], "no panel shows " .. family)
    end
    for _, v in ipairs { vars.provider, vars.action } do
      assert.equal(v.definition, v.query.query)
    end
  end)

  it("the dashboard: its expressions parse (promtool) and name only metrics that are emitted", function()
    local d = cjson.decode(dashboard_text)
    assert.same({}, unknown(dashboard_names(d)))
    assert.same({}, unknown(streamctl_words(dashboard_text)))
    -- each expression a recording rule, Grafana's variables given values, for promtool to parse
    local lines = { "groups:", "  - name: dashboard", "    rules:" }
    for i, e in ipairs(dashboard_exprs(d)) do
      local expr = e:gsub("%$__rate_interval", "5m"):gsub("%$provider", ".*"):gsub("%$action", ".*")
      assert.is_nil(expr:find("$", 1, true), "a Grafana variable left in " .. e)
      lines[#lines + 1] = "      - record: dashboard:expr" .. i
      lines[#lines + 1] = "        expr: " .. cjson.encode(expr):gsub("\\/", "/") -- (YAML has no \/)
    end
    local dir = process.temp_dir()
    process.write_file(dir .. "/dashboard.yml", table.concat(lines, "\n") .. "\n")
    local rc, said = promtool(dir, "check rules dashboard.yml")
    -- and a broken one is caught: a parenthesis short
    process.write_file(dir .. "/broken.yml", table.concat(lines, "\n"):gsub("%)%)\"\n", ")\"\n", 1) .. "\n")
    local broken_rc, broken_said = promtool(dir, "check rules broken.yml")
    process.run("rm -rf " .. q(dir))
    assert.equal(0, rc, said)
    assert.truthy(said:find("SUCCESS: " .. #dashboard_exprs(d) .. " rules found", 1, true), said)
    assert.equal(1, broken_rc, broken_said)
    -- a misspelt name in the dashboard is caught
    local bad = cjson.decode((dashboard_text:gsub("streamctl_slot_wait_seconds_bucket", "streamctl_slot_wait_bucket")))
    assert.same({ "streamctl_slot_wait_bucket" }, unknown(dashboard_names(bad)))
  end)
end)
