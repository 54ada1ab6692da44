std = "max"
max_line_length = 120
exclude_files = { "build/**" }
-- spec tables of inputs and their exact messages read best one case a line
files["spec/**"] = { std = "+busted", max_line_length = 140 }
-- the emulator runs inside nginx, where ngx.status, ngx.header and ngx.ctx are assigned
files["emulator/src/streamctl/emulator/**"] = { globals = { "ngx" } }
-- the OpenResty example's handlers run inside nginx, where ngx.status and ngx.header are assigned
files["examples/openresty/**"] = { globals = { "ngx" } }
-- the providers' published methods, generated (tools/provider-api.lua): a method's summary is one line
files["src/streamctl/aliyun/api.lua"] = { max_line_length = false }
files["src/streamctl/zego/api.lua"] = { max_line_length = false }
files["spec/vectors/provider-api/*.lua"] = { max_line_length = false }
