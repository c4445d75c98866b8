-- det-random.lua: random numbers and the clock, from the log entry
-- (tests/integ/determinism.sh).
function handle(req)
  local r = {}
  for i = 1, 10 do r[#r + 1] = math.random(1, 1000000) end
  babl.write("random ", table.concat(r, " "), "\n")
  babl.write("float ", string.format("%.17g", math.random()), "\n")
  babl.write("int ", math.random(0), "\n")
  math.randomseed(42)
  babl.write("seeded42 ", math.random(1, 1000000), " ", math.random(1, 1000000), "\n")
  local ok = pcall(math.randomseed)
  babl.write("randomseed() ", tostring(ok), " ", math.random(1, 1000000), "\n")
  babl.write("time ", os.time(), " ", string.format("%.3f", babl.now()), " ", req.time, "\n")
  babl.write("date ", os.date("%Y-%m-%d %H:%M:%S"), " | ", os.date("!%c"), " | ", os.date("%x %X %p %j %a %b"), "\n")
  local d = os.date("*t")
  for _, k in ipairs({"year", "month", "day", "hour", "min", "sec", "wday", "yday", "isdst"}) do
    babl.write(k, "=", tostring(d[k]), " ")
  end
  babl.write("\n")
  for k, v in pairs(d) do babl.write(k, "=", tostring(v), " ") end
  babl.write("\n")
  babl.write("mktime ", os.time({year = 2020, month = 2, day = 29, hour = 12}), " ",
    os.difftime(os.time(), 0), "\n")
  local x = 0
  for i = 1, 1000 do x = x + i end
  babl.write("clock ", string.format("%.6f", os.clock()), "\n")
  babl.write("id ", req.id, "\n")
end
