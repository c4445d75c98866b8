-- rerun.lua: a call that is still running when its node stops
-- (tests/integ/lua.sh).
--   rerun work N       read all input, count to N, write it upper-cased
--                      and the count
--   rerun set K N      the same after setting K to the input
--   rerun get K        print K's value or "(none)"
function handle(req)
  local cmd = req.args[1]
  if cmd == "get" then
    babl.write(babl.kv.get(req.args[2]) or "(none)", "\n")
    return 0
  end
  local s = babl.readall()
  local n = tonumber(req.args[cmd == "set" and 3 or 2]) or 0
  if cmd == "set" then
    babl.kv.set(req.args[2], s)
  end
  local x = 0
  for i = 1, n do
    x = x + i % 7
  end
  babl.write(s:upper(), " ", x, "\n")
end
