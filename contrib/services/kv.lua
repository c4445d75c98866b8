-- kv.lua: the service's key-value store from the command line.
--   babl kv set KEY VALUE    store VALUE under KEY
--   babl kv get KEY          print the value (exit 1 if there is none)
--   babl kv del KEY          remove KEY
--   babl kv keys [PREFIX]    print the keys (with that prefix), sorted
-- Values are printed as stored, followed by a newline.
-- Deploy: babl deploy kv contrib/services/kv.lua

local function usage()
  babl.ewrite("usage: kv set KEY VALUE | get KEY | del KEY | keys [PREFIX]\n")
  return 2
end

function handle(req)
  local cmd, a, b = req.args[1], req.args[2], req.args[3]
  local n = #req.args
  if cmd == "set" and n == 3 then
    babl.kv.set(a, b)
  elseif cmd == "get" and n == 2 then
    local v = babl.kv.get(a)
    if v == nil then
      babl.ewrite("kv: ", a, ": no such key\n")
      return 1
    end
    babl.write(v, "\n")
  elseif cmd == "del" and n == 2 then
    babl.kv.del(a)
  elseif cmd == "keys" and n <= 2 then
    for _, k in ipairs(babl.kv.keys(a or "")) do
      babl.write(k, "\n")
    end
  else
    return usage()
  end
  return 0
end
