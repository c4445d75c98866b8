-- esc.lua: escape and exhaustion probes (tests/integ/lua.sh), one per mode:
--   babl esc MODE
-- Probes of things that must be absent or refused print "blocked: ..." and
-- exit 0, or print "ESCAPED: ..." and exit 99.  Exhaustion modes do not
-- return: the sandbox must end them.

local function escaped(what)
  babl.write("ESCAPED: ", what, "\n")
  return 99
end

-- Run f protected: "blocked: <message>" if it raised, else escaped().
local function must_fail(what, f, ...)
  local ok, err = pcall(f, ...)
  if ok then
    return escaped(what)
  end
  babl.write("blocked: ", tostring(err), "\n")
  return 0
end

local BIN = "\27LuaT\0\25\147\r\n\26\n\4\8\8xV\0\0\0\0\0\0\0\0\0\0\0(w@\1\0\0"

local modes = {}

function modes.ping() babl.write("pong\n") return 0 end

function modes.io()
  if io ~= nil then return escaped("io is defined") end
  return must_fail("io.open", function() return io.open("/etc/passwd") end)
end

function modes.os()
  for _, k in ipairs({"execute", "exit", "getenv", "remove", "rename", "tmpname", "setlocale"}) do
    if os[k] ~= nil then return escaped("os." .. k .. " is defined") end
  end
  return must_fail("os.execute", function() return os.execute("touch /tmp/babl-escaped") end)
end

function modes.require()
  if package ~= nil then return escaped("package is defined") end
  return must_fail("require", function() return require("os") end)
end

function modes.dofile()
  return must_fail("dofile", function() return dofile("/etc/passwd") end)
end

function modes.loadfile()
  return must_fail("loadfile", function() return loadfile("/etc/passwd") end)
end

function modes.loadbin()
  local parts = {}
  local f, e = load(BIN)
  if f then return escaped("load of a binary chunk") end
  parts[#parts + 1] = e
  f, e = load(BIN, "=bin", "b")
  if f then return escaped("load(s, name, 'b')") end
  parts[#parts + 1] = e
  f, e = load(BIN, "=bin", "bt")
  if f then return escaped("load(s, name, 'bt')") end
  local i = 0
  f, e = load(function() i = i + 1; return i == 1 and BIN or nil end)
  if f then return escaped("load(reader) of a binary chunk") end
  -- text chunks do load, in the sandbox's environment
  local g = load("return 40 + 2")
  if not g or g() ~= 42 then return escaped("text load is broken") end
  babl.write("blocked: ", parts[1], "\n")
  return 0
end

function modes.debug()
  if debug ~= nil then return escaped("debug is defined") end
  return must_fail("debug.getinfo", function() return debug.getinfo(1) end)
end

function modes.gc()
  if type(collectgarbage("count")) ~= "number" then return escaped("count is broken") end
  for _, opt in ipairs({"collect", "stop", "restart", "step", "incremental", "generational", "isrunning"}) do
    if pcall(collectgarbage, opt) then return escaped("collectgarbage(" .. opt .. ")") end
  end
  return must_fail("collectgarbage()", collectgarbage)
end

function modes.dump()
  if string.dump ~= nil or ("").dump ~= nil then return escaped("string.dump is defined") end
  return must_fail("string.dump", function() return string.dump(handle) end)
end

function modes.strmeta()
  local mt = getmetatable("")
  local evil = {upper = function() return "pwned" end}
  if type(mt) == "table" then
    if pcall(function() mt.__index = evil end) then return escaped("string metatable __index") end
    if pcall(rawset, mt, "__index", evil) then return escaped("rawset on the string metatable") end
    if pcall(setmetatable, mt, {}) then return escaped("setmetatable on the string metatable") end
  end
  if pcall(function() string.upper = evil.upper end) then return escaped("string.upper assigned") end
  if pcall(rawset, string, "upper", evil.upper) then return escaped("rawset(string, ...)") end
  if pcall(function() string.newfield = 1 end) then return escaped("string.newfield assigned") end
  if ("abc"):upper() ~= "ABC" then return escaped("string methods changed") end
  return must_fail("string metatable", function() getmetatable("").__index = evil end)
end

function modes.globals()
  if pcall(rawset, _G, "evil", 1) then return escaped("rawset(_G, ...)") end
  if pcall(function() _G.evil = 1 end) then return escaped("_G.evil = 1") end
  if pcall(function() load("evil = 1")() end) then return escaped("a global set by a loaded chunk") end
  if pcall(setmetatable, _G, {}) then return escaped("setmetatable(_G, ...)") end
  if pcall(function() handle = nil end) then return escaped("handle replaced") end
  if pcall(rawset, math, "pi", 3) then return escaped("rawset(math, ...)") end
  if rawget(_G, "evil") ~= nil or math.pi == 3 then return escaped("a write went through") end
  return must_fail("rawset(_G)", rawset, _G, "evil", 1)
end

-- Exhaustion: none of these return normally.
function modes.loop() while true do end end

function modes.pcallloop()
  while true do pcall(function() while true do end end) end
end

function modes.xpcallloop()
  while true do
    xpcall(function() error("x") end, function() while true do end end)
  end
end

function modes.xpcallhandler()
  xpcall(function() while true do end end, function() while true do end end)
end

function modes.coloop()
  local co = coroutine.wrap(function() while true do coroutine.yield() end end)
  pcall(coroutine.resume, coroutine.create(function() while true do end end))
  while true do
    pcall(co)
    pcall(coroutine.resume, coroutine.create(function() while true do end end))
  end
end

function modes.memtable()
  local t, i = {}, 0
  while true do
    i = i + 1
    t[i] = {i, i}
  end
end

function modes.memrep()
  local t = {}
  for i = 1, 1000000 do
    t[i] = string.rep("x", 1 << 20) .. i
  end
end

function modes.memconcat()
  local s = "xy"
  while true do s = s .. s end
end

function modes.pcallmem()
  local t = {}
  while true do
    pcall(function() for i = 1, 1e9 do t[#t + 1] = {i} end end)
  end
end

function modes.bigrep()
  local s = string.rep("x", 1 << 40)
  return escaped("a string of " .. #s .. " bytes")
end

function modes.recurse()
  local function f(n) return f(n + 1) + 1 end
  return f(1)
end

function modes.crecurse()
  local t = setmetatable({}, {__index = function(t, k) return t[k] end})
  return t.x
end

function modes.gsubrecurse()
  local function f(s) return (s:gsub(".", f)) end
  return f("x")
end

function handle(req)
  local m = modes[req.args[1] or ""]
  if not m then
    babl.ewrite("esc: unknown mode\n")
    return 2
  end
  return m()
end
