std = "max"
max_line_length = 120
exclude_files = { "build/**" }
-- spec tables of inputs and their exact messages read best one case a line
files["spec/**"] = { std = "+busted", max_line_length = 140 }
files["lua/streamctl/emulator/**"] = { read_globals = { "ngx" } }
