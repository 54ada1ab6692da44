-- The emulator's side of nginx's request and answer: a request read whole
-- (method, path, query, form parameters, headers, body, or the body as
-- JSON), and an answer sent (status, headers, body; or dropped, or cut in
-- half, as the faults drop and truncate ask).

local json = require "streamctl.emulator.json"
local encoding = require "streamctl.emulator.encoding"

local ngx = ngx
local ngx_var, ngx_req, ngx_header, ngx_print, ngx_flush = ngx.var, ngx.req, ngx.header, ngx.print, ngx.flush
local ngx_exit = ngx.exit

local type, pairs, tostring, tonumber = type, pairs, tostring, tonumber
local floor = math.floor
local lower, sub, find, match = string.lower, string.sub, string.find, string.match
local concat = table.concat
local io_open = io.open

local M = {}

-------------------------------------------------------------------------------
-- Reading

-- The request's body ("" when there is none), from memory or from the file
-- nginx buffered it to.
function M.read_body()
  ngx_req.read_body()
  local body = ngx_req.get_body_data()
  if body then
    return body
  end
  local file = ngx_req.get_body_file()
  if not file then
    return ""
  end
  local f = io_open(file, "rb")
  if not f then
    return ""
  end
  body = f:read("*a") or ""
  f:close()
  return body
end

-- The request's body decoded as JSON: `empty` when the body is empty; nil
-- and a message when it is not JSON.
function M.read_json_body(empty)
  local body = M.read_body()
  if body == "" then
    return empty
  end
  local v, err = json.decode(body)
  if v == nil then
    return nil, "body is not valid JSON: " .. tostring(err)
  end
  return v
end

-- A provider request read whole: { method, path, query, query_list,
-- param_list, params (the query's and a form body's parameters), headers
-- (lowercased names), body, scheme, port }.
function M.collect()
  local body = M.read_body()
  local headers = {}
  for k, v in pairs(ngx_req.get_headers(200)) do
    if type(v) == "table" then
      v = concat(v, ",")
    end
    headers[lower(k)] = v
  end
  local query = ngx_var.args or ""
  local query_list = encoding.parse_query(query, {}, {})
  local list, map = encoding.parse_query(query, {}, {})
  local ctype = lower(headers["content-type"] or "")
  if find(ctype, "^application/x%-www%-form%-urlencoded") then
    encoding.parse_query(body, list, map)
  end
  local path = match(ngx_var.request_uri or "/", "^[^?]*")
  if path == "" then
    path = "/"
  end
  return {
    method = ngx_req.get_method(),
    path = path,
    query = query,
    query_list = query_list,
    param_list = list,
    params = map,
    headers = headers,
    body = body,
    scheme = ngx_var.scheme,
    port = tonumber(ngx_var.server_port),
  }
end

-------------------------------------------------------------------------------
-- Sending

-- Sends { status, headers, body }; { drop = true } closes the connection
-- without an answer, `truncate` sends half the body and closes.
function M.send(res)
  if res.drop then
    return ngx_exit(444)
  end
  ngx.status = res.status
  for k, v in pairs(res.headers or {}) do
    ngx_header[k] = v
  end
  local body = res.body or ""
  ngx_header["Content-Length"] = #body
  if res.truncate then
    ngx_print(sub(body, 1, floor(#body / 2)))
    ngx_flush(true)
    return ngx_exit(444)
  end
  ngx_print(body)
end

function M.send_json(status, value)
  return M.send({
    status = status,
    headers = { ["Content-Type"] = "application/json" },
    body = json.encode(value),
  })
end

return M
