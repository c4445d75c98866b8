-- det-tostring.lua: printing tables, functions and threads, %p
-- (tests/integ/determinism.sh).
local shared = {}

function handle(req)
  local a, b = {}, {1, 2}
  print(a, b, shared, a)
  print(print, handle, string.format, coroutine.create(function() end))
  print(string.format("%s|%s|%q", a, tostring(b), 1 / 3))
  local ok, e = pcall(string.format, "%p", a)
  print("%p:", ok, e)
  local mt = setmetatable({}, {__tostring = function() return "custom" end})
  local named = setmetatable({}, {__name = "MyType"})
  print(mt, named, tostring(nil), tostring(true), 2 ^ 53, 0.1, -0.0, 1e308 * 10, 3 // 0.0, math.pi)
  local ok2, err = pcall(error, {code = 7})
  print("error object:", ok2, err, type(err) == "table" and err.code)
  local ok3, err3 = pcall(function() return a < b end)
  print("compare:", ok3, err3)
  local ok4, err4 = pcall(function() return {} .. "" end)
  print("concat:", ok4, err4)
  -- many tables: their numbers follow first use
  local list = {}
  for i = 1, 20 do list[i] = {} end
  for i = 20, 1, -2 do babl.write(tostring(list[i]), " ") end
  babl.write("\n")
  print(select("#", 1, nil, 3), rawlen({1, 2, 3}), rawequal(a, a), #_VERSION)
end
