#!/usr/bin/python3
"""An OTLP/HTTP trace receiver for the specs (issue 71), independent of
streamctl.trace.otlp: it reads the requests with Debian's protobuf runtime
(python3-protobuf) and the messages of spec/helpers/otlp/trace.proto, which
protoc (protobuf-compiler) compiles into a temporary directory at start.

  otlp_receiver.py decode --content-type TYPE FILE
      prints the request in FILE as normalized JSON: a list, one object per span
  otlp_receiver.py serve --port P --out FILE [--requests FILE] [--status CODE]
                         [--fail-first N] [--delay SECONDS] [--ready FILE]
      an HTTP/1.1 server on 127.0.0.1:P (0: a port of the kernel's) taking
      POST /v1/traces (keep-alive, Content-Length); each span decoded is a
      JSON line appended to --out, each request one to --requests. It answers
      200 with an empty ExportTraceServiceResponse (`{}` for JSON); with
      --status, CODE instead (to every request, or to the first N given
      --fail-first N, whose CODE is 503 unless given); each answer after
      --delay SECONDS. When it listens it writes its port to --ready. It
      exits on SIGTERM or when its parent is gone: never by a clock of its
      own (a slow machine makes a spec slower, never red).

A span, normalized (keys left out when empty):

  {"trace_id", "span_id", "parent_span_id" (hex), "trace_state", "name", "kind" (the enum's number),
   "start_time_unix_nano", "end_time_unix_nano" (integers), "flags",
   "attributes": {key: {"string": s} | {"int": n} | {"double": x} | {"bool": b}
                       | {"bytes": hex} | {"array": [...]} | {"kvlist": {...}}},
   "events": [{"name", "time_unix_nano", "attributes"}], "links" (how many),
   "status": {"code", "message"}, "resource": {attributes}, "scope": {"name", "version"}}

(a double that is not finite as "NaN", "Infinity" or "-Infinity"). A line of
--out is that object with "request" (the request's number, from 1),
"content_type" and "answered" (the answer's status); a request that cannot
be read leaves one line with "error" instead, and is answered 400 (415 for
another Content-Type). A line of --requests: {"request", "content_type",
"answered", "spans" (how many), "error", "peer" (the client's port)}.

JSON bodies are read by OTLP's JSON encoding (the specification's "JSON
Protobuf Encoding"): lowerCamelCase keys only, trace and span ids as hex,
enums as integers. Stricter than a collector, as a check of what
streamctl's encoder promises: a key given twice, a 64-bit integer written as
a number rather than a decimal string, an enum as a name, a bare NaN and an
unknown field are refused.
"""
import argparse
import base64
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.path.join(HERE, "otlp")

PROTOBUF, JSON = "application/x-protobuf", "application/json"


class Bad(Exception):
    """A request that breaks OTLP's rules (or this reader's stricter ones)."""


def compile_messages(workdir):
    """trace.proto compiled by protoc into `workdir`, imported."""
    subprocess.run(["protoc", "-I", PROTO_DIR, "--python_out", workdir, os.path.join(PROTO_DIR, "trace.proto")],
                   check=True)
    sys.path.insert(0, workdir)
    import trace_pb2  # noqa: E402 (made just now)
    from google.protobuf import json_format
    return trace_pb2, json_format


# ---------------------------------------------------------------- normalized form

def value(v):
    which = v.WhichOneof("value")
    if which is None:
        return {}
    if which == "string_value":
        return {"string": v.string_value}
    if which == "bool_value":
        return {"bool": v.bool_value}
    if which == "int_value":
        return {"int": v.int_value}
    if which == "double_value":
        d = v.double_value
        if math.isnan(d):
            return {"double": "NaN"}
        if math.isinf(d):
            return {"double": "Infinity" if d > 0 else "-Infinity"}
        return {"double": d}
    if which == "bytes_value":
        return {"bytes": v.bytes_value.hex()}
    if which == "array_value":
        return {"array": [value(x) for x in v.array_value.values]}
    return {"kvlist": attributes(v.kvlist_value.values)}


def attributes(kvs):
    out = {}
    for kv in kvs:
        if kv.key in out:
            raise Bad("the attribute %r is given twice" % kv.key)
        out[kv.key] = value(kv.value)
    return out


def normalize(request):
    spans = []
    for rs in request.resource_spans:
        resource = attributes(rs.resource.attributes)
        for ss in rs.scope_spans:
            scope = {"name": ss.scope.name, "version": ss.scope.version}
            for s in ss.spans:
                span = {
                    "trace_id": s.trace_id.hex(), "span_id": s.span_id.hex(),
                    "parent_span_id": s.parent_span_id.hex(), "trace_state": s.trace_state,
                    "name": s.name, "kind": s.kind, "flags": s.flags,
                    "start_time_unix_nano": s.start_time_unix_nano, "end_time_unix_nano": s.end_time_unix_nano,
                    "attributes": attributes(s.attributes),
                    "events": [{"name": e.name, "time_unix_nano": e.time_unix_nano,
                                "attributes": attributes(e.attributes)} for e in s.events],
                    "links": len(s.links),
                    "status": {"code": s.status.code, "message": s.status.message},
                    "resource": resource, "scope": scope,
                }
                for key in ("parent_span_id", "trace_state", "flags", "links"):
                    if not span[key]:
                        del span[key]
                spans.append(span)
    return spans


# ---------------------------------------------------------------- OTLP's JSON encoding

ID_KEYS = {"traceId": 32, "spanId": 16, "parentSpanId": 16}
INT64_KEYS = {"startTimeUnixNano", "endTimeUnixNano", "timeUnixNano", "intValue", "rejectedSpans"}
ENUM_KEYS = {"kind", "code"}
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")


def no_twice(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise Bad("the key %r is given twice in one object" % k)
        out[k] = v
    return out


def no_bare_constant(name):
    raise Bad("%s is not JSON (OTLP writes it as a string)" % name)


def otlp_json_to_proto3_json(node, path):
    """OTLP's JSON checked and made proto3's standard JSON mapping (ids base64) in place."""
    if isinstance(node, list):
        for i, x in enumerate(node):
            otlp_json_to_proto3_json(x, "%s[%d]" % (path, i))
        return
    if not isinstance(node, dict):
        return
    for key in list(node):
        v, where = node[key], path + "." + key
        if not CAMEL.match(key):
            raise Bad("%s: keys are lowerCamelCase field names" % where)
        if key in ID_KEYS:
            if not isinstance(v, str) or not re.fullmatch(r"[0-9a-fA-F]*", v) or len(v) not in (0, ID_KEYS[key]):
                raise Bad("%s must be %d hex digits, got %r" % (where, ID_KEYS[key], v))
            node[key] = base64.b64encode(bytes.fromhex(v)).decode()
        elif key in INT64_KEYS:
            if not isinstance(v, str) or not re.fullmatch(r"-?[0-9]+", v):
                raise Bad("%s must be a 64-bit integer as a decimal string, got %r" % (where, v))
        elif key in ENUM_KEYS:  # (a span's kind, a status's code: the only enums here)
            if type(v) is not int:
                raise Bad("%s must be the enum's number, got %r" % (where, v))
        else:
            otlp_json_to_proto3_json(v, where)


def from_json(body, pb, json_format):
    try:
        doc = json.loads(body.decode("utf-8"), object_pairs_hook=no_twice, parse_constant=no_bare_constant)
    except (UnicodeDecodeError, ValueError) as e:
        raise Bad("not JSON: %s" % e) from None
    if not isinstance(doc, dict):
        raise Bad("the body is not a JSON object")
    otlp_json_to_proto3_json(doc, "$")
    request = pb.ExportTraceServiceRequest()
    try:
        json_format.ParseDict(doc, request)
    except json_format.ParseError as e:
        raise Bad("not an ExportTraceServiceRequest: %s" % e) from None
    return request


def decode(body, content_type, pb, json_format):
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == PROTOBUF:
        request = pb.ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception as e:  # (DecodeError; the C++ runtime's own for bad UTF-8)
            raise Bad("not an ExportTraceServiceRequest: %s" % e) from None
    elif ctype == JSON:
        request = from_json(body, pb, json_format)
    else:
        raise Bad("the Content-Type %r is neither %s nor %s" % (content_type, PROTOBUF, JSON))
    return normalize(request)


def dumps(x):
    return json.dumps(x, sort_keys=True, separators=(",", ":"))


# ---------------------------------------------------------------- the server

def serve(args, pb, json_format):
    lock = threading.Lock()
    state = {"count": 0}
    fail_first = args.fail_first
    if fail_first is None:
        fail_first = 0 if args.status is None else float("inf")
    fail_status = args.status if args.status is not None else 503

    def append(path, lines):
        if path and lines:
            with open(path, "a", encoding="utf-8") as f:
                f.write("".join(line + "\n" for line in lines))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *_):
            pass

        def answer(self, status, body, ctype):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self.answer(405, b"", "text/plain")

        def do_POST(self):
            length = self.headers.get("Content-Length")
            if length is None or not length.isdigit():
                self.close_connection = True
                self.answer(411, b"", "text/plain")
                return
            body = self.rfile.read(int(length))
            if self.path != "/v1/traces":
                self.answer(404, b"", "text/plain")
                return
            ctype = self.headers.get("Content-Type", "")
            with lock:
                state["count"] += 1
                n = state["count"]
                status = fail_status if n <= fail_first else 200
                head = {"request": n, "content_type": ctype}
                try:
                    spans, error = decode(body, ctype, pb, json_format), None
                except Bad as e:
                    spans, error = [], str(e)
                    if status == 200:
                        status = 415 if "Content-Type" in error else 400
                lines = [dumps(dict(span, **head, answered=status)) for span in spans]
                if error:
                    lines.append(dumps(dict(head, answered=status, error=error)))
                append(args.out, lines)
                # (the client's port: requests on one kept-alive connection share it)
                summary = dict(head, answered=status, spans=len(spans), peer=self.client_address[1])
                if error:
                    summary["error"] = error
                append(args.requests, [dumps(summary)])
            if args.delay:
                time.sleep(args.delay)
            json_body = ctype.split(";")[0].strip().lower() == JSON
            if status == 200:
                if json_body:
                    self.answer(200, b"{}", JSON)
                else:
                    self.answer(200, pb.ExportTraceServiceResponse().SerializeToString(), PROTOBUF)
            else:
                self.answer(status, b"", "text/plain")

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server(("127.0.0.1", args.port), Handler)
    if args.ready:
        tmp = args.ready + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("%d\n" % server.server_address[1])
        os.rename(tmp, args.ready)

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.2)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


def main():
    parser = argparse.ArgumentParser(description="an OTLP/HTTP trace receiver for the specs")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("decode")
    d.add_argument("--content-type", required=True)
    d.add_argument("file")
    s = sub.add_parser("serve")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--requests")
    s.add_argument("--status", type=int)
    s.add_argument("--fail-first", type=int)
    s.add_argument("--delay", type=float, default=0)
    s.add_argument("--ready")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    workdir = tempfile.mkdtemp(prefix="otlp-receiver-")
    try:
        pb, json_format = compile_messages(workdir)
        if args.command == "decode":
            with open(args.file, "rb") as f:
                body = f.read()
            try:
                print(dumps(decode(body, args.content_type, pb, json_format)))
            except Bad as e:
                print("otlp_receiver: %s" % e, file=sys.stderr)
                return 1
        else:
            serve(args, pb, json_format)
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
