-- Test helper: OTLP/HTTP trace exports read by a reader independent of
-- streamctl.trace.otlp (spec/helpers/otlp_receiver.py: Debian's protobuf
-- runtime and protoc with OTLP's messages, spec/helpers/otlp/trace.proto).
--
--   local otlp = require "spec.helpers.otlp"
--   local spans = otlp.decode(body, content_type)  -- the spans, normalized (raises with the reader's reason)
--   local bytes = otlp.protoc_encode(text)          -- an ExportTraceServiceRequest in protobuf's text
--                                                   -- format, encoded by protoc (the official encoder)
--   local r = otlp.start_receiver { status = 503, fail_first = 2, delay = 0.5 }
--   r.port, r.url                  127.0.0.1's port, "http://127.0.0.1:PORT/v1/traces"
--   r.spans()                      the spans received so far, in order (each with `request`, its
--                                  number from 1, `content_type` and `answered`, the status sent)
--   r.requests()                   a table per request: request, content_type, answered, spans (how
--                                  many), error (why it could not be read), peer (the client's port)
--   r.wait_spans(n[, seconds])     waits (bounded: 20 s by default) until n spans came; the spans
--   r.wait_requests(n[, seconds])  likewise for requests
--   r.alive()                      false once the receiver has exited
--   r.stop()                       SIGTERM (then KILL after 5 s), reaped; its files removed, what
--                                  they held kept for spans() and requests(); idempotent (a receiver
--                                  not stopped gets SIGTERM when the handle is collected or the
--                                  spec's Lua state closes)
--
-- start_receiver's options: port (default: one of this spec's block,
-- spec/helpers/ports.lua), status (the answer to a failed request), fail_first
-- (how many requests get `status`: all of them when only `status` is given;
-- 503 when only `fail_first` is), delay (seconds before each answer). It
-- ends when stopped or when this process does, never by a clock.
--
-- A span (otlp_receiver.py's header has it whole): trace_id, span_id,
-- parent_span_id (hex; nil for a root), trace_state, name, kind (1
-- internal, 3 client), start_time_unix_nano and end_time_unix_nano,
-- attributes ({ key = { string = s } | { int = n } | { double = x } | { bool = b } }),
-- events ({ name, time_unix_nano, attributes }), status ({ code, message }),
-- resource (its attributes) and scope ({ name, version }). Nanoseconds come
-- as decimal strings ("1795800000123457000"): beyond 2^53, LuaJIT's numbers
-- would round them; so does an int attribute of 16 digits or more.
local json = require "streamctl.base.json"
local checks = require "spec.helpers.checks"
local process = require "spec.helpers.process"

local M = {}

local ROOT = os.getenv("STREAMCTL_ROOT") or "."
M.RECEIVER = ROOT .. "/spec/helpers/otlp_receiver.py"
M.PROTO_DIR = ROOT .. "/spec/helpers/otlp"
M.REQUEST = "streamctl.spec.otlp.ExportTraceServiceRequest"

-- Debian's Python, with python3-protobuf (not a virtualenv's), without the
-- sanitizers' runtimes `make asan` and `make valgrind` preload into what
-- they start: the receiver is not the code under test.
local PYTHON = "env -u LD_PRELOAD /usr/bin/python3"
local q, read_file, write_file, alive = process.quote, process.read_file, process.write_file, process.alive

-- The reader's JSON (compact, as Python's json.dumps writes it with its
-- separators) as Lua tables, 64-bit integers that a double would round
-- made strings first.
local function parse(text)
  text = text:gsub('("[%w_]*time_unix_nano":)(%-?%d+)', '%1"%2"')
  text = text:gsub('{"int":(%-?%d+)}', function(d)
    if #d:gsub("^%-", "") >= 16 then return '{"int":"' .. d .. '"}' end
  end)
  local v, err = json.decode(text)
  assert(v ~= nil, "cannot read the receiver's JSON: " .. tostring(err) .. ": " .. text)
  return v
end

-- The complete lines of a file of JSON lines, read (a line still being written is left for later).
local function lines_of(path)
  local text, out = read_file(path) or "", {}
  for line in text:gmatch("([^\n]*)\n") do out[#out + 1] = parse(line) end
  return out
end

--- The spans of an OTLP/HTTP body, read by otlp_receiver.py; raises with
-- its message when it cannot read them.
function M.decode(body, content_type)
  local dir = process.temp_dir()
  write_file(dir .. "/body", body)
  local ok = process.run(PYTHON .. " " .. q(M.RECEIVER) .. " decode --content-type " .. q(content_type) .. " "
    .. q(dir .. "/body") .. " >" .. q(dir .. "/out") .. " 2>" .. q(dir .. "/err"))
  local out, err = read_file(dir .. "/out") or "", read_file(dir .. "/err") or ""
  os.execute("rm -rf " .. q(dir))
  if not ok then error("otlp_receiver.py cannot read the body: " .. err, 2) end
  return parse(out)
end

--- `text` (an ExportTraceServiceRequest in protobuf's text format) encoded by
-- `protoc --encode`; raises with protoc's message when it refuses it.
function M.protoc_encode(text)
  local dir = process.temp_dir()
  write_file(dir .. "/in.txtpb", text)
  local ok = process.run("protoc -I " .. q(M.PROTO_DIR) .. " --encode=" .. M.REQUEST .. " "
    .. q(M.PROTO_DIR .. "/trace.proto") .. " <" .. q(dir .. "/in.txtpb") .. " >" .. q(dir .. "/out")
    .. " 2>" .. q(dir .. "/err"))
  local out, err = read_file(dir .. "/out"), read_file(dir .. "/err") or ""
  os.execute("rm -rf " .. q(dir))
  if not ok then error("protoc --encode refused the message: " .. err, 2) end
  return out
end

local function reap(child)
  process.run("kill -TERM " .. child.pid .. " 2>/dev/null")
  if not checks.wait_until(function() return not alive(child.pid) end, 5) then
    process.run("kill -KILL " .. child.pid .. " 2>/dev/null")
    checks.wait_until(function() return not alive(child.pid) end, 5)
  end
  child.pipe:close()
end

local function number_option(opts, name, lo, hi)
  local v = opts[name]
  if v ~= nil and (type(v) ~= "number" or v < lo or v > hi) then
    error("start_receiver: " .. name .. " must be a number from " .. lo .. " to " .. hi .. ", got " .. tostring(v), 3)
  end
  return v
end

--- Starts otlp_receiver.py's server; returns its handle (above).
function M.start_receiver(opts)
  opts = opts or {}
  local ports = require "spec.helpers.ports"
  ports.refuse_in_unit_tier("an OTLP receiver")
  local port = number_option(opts, "port", 1, 65535) or ports.free(1)[1]
  local status = number_option(opts, "status", 100, 599)
  local fail_first = number_option(opts, "fail_first", 0, 1e6)
  local delay = number_option(opts, "delay", 0, 600)
  local dir = process.temp_dir()
  local files = { out = dir .. "/spans.jsonl", requests = dir .. "/requests.jsonl", ready = dir .. "/ready",
                  log = dir .. "/stderr" }
  local cmd = { PYTHON, q(M.RECEIVER), "serve", "--port", port, "--out", q(files.out), "--requests",
                q(files.requests), "--ready", q(files.ready) }
  if status then cmd[#cmd + 1] = "--status " .. status end
  if fail_first then cmd[#cmd + 1] = "--fail-first " .. fail_first end
  if delay then cmd[#cmd + 1] = "--delay " .. string.format("%.6f", delay) end
  local child = process.spawn(table.concat(cmd, " ") .. " </dev/null 2>" .. q(files.log))
  local started = checks.wait_until(function()
    return read_file(files.ready) ~= nil or not alive(child.pid)
  end, 20)
  if not (started and read_file(files.ready)) then
    reap(child)
    local log = read_file(files.log) or ""
    os.execute("rm -rf " .. q(dir))
    error("the OTLP receiver did not start on port " .. port .. ": " .. log, 2)
  end

  local r = { port = port, url = "http://127.0.0.1:" .. port .. "/v1/traces", pid = child.pid }
  local kept -- (spans and requests, read when it stopped)
  -- (a receiver a spec forgot to stop is ended when the Lua state closes,
  -- before the pipe to it is, finalizers running newest first: not waited
  -- for until the pipe closes)
  r.sentinel = process.on_close(function()
    if not kept then process.run("kill -TERM " .. child.pid .. " 2>/dev/null") end
  end)
  function r.spans() return kept and kept.spans or lines_of(files.out) end
  function r.requests() return kept and kept.requests or lines_of(files.requests) end
  function r.alive() return not kept and alive(child.pid) end
  local function wait(list, n, seconds, what)
    local got = checks.wait_until(function() return #list() >= n end, seconds or 20)
    assert(got, "the OTLP receiver got " .. #list() .. " " .. what .. ", not " .. n)
    return list()
  end
  function r.wait_spans(n, seconds) return wait(r.spans, n, seconds, "spans") end
  function r.wait_requests(n, seconds) return wait(r.requests, n, seconds, "requests") end
  function r.stop()
    if kept then return true end
    reap(child)
    kept = { spans = lines_of(files.out), requests = lines_of(files.requests) }
    r.sentinel = nil
    os.execute("rm -rf " .. q(dir))
    return true
  end
  return r
end

return M
