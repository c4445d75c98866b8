-- rterr.lua: an uncaught error two calls deep (line 4, called from 8, 13).
local function inner(t)
  babl.write("before\n")
  local v = t.missing.field
  return v
end
local function outer()
  local v = inner({})
  return v
end

function handle(req)
  local v = outer()
  return v
end
