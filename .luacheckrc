std = "max"
max_line_length = 120
exclude_files = { "build/**" }
files["spec/**"] = { std = "+busted" }
files["lua/streamctl/emulator/**"] = { read_globals = { "ngx" } }
