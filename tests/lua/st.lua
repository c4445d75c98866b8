-- st.lua: kv atomicity probes (tests/integ/lua.sh).
--   st set K V       set K, exit 0            st get K    print K's value or "(none)"
--   st setfail K V   set K, then error()      st setexit K V   set K, then return 3
--   st setwait K V   set K, print "set", then wait for the end of input
--   st setspin K V   set K, then loop until the instruction budget runs out
function handle(req)
  local cmd, k, v = req.args[1], req.args[2], req.args[3]
  if cmd == "get" then
    babl.write(babl.kv.get(k) or "(none)", "\n")
    return 0
  end
  babl.kv.set(k, v)
  if cmd == "set" then
    return 0
  elseif cmd == "setfail" then
    error("failing after the set")
  elseif cmd == "setexit" then
    return 3
  elseif cmd == "setwait" then
    babl.write("set\n")
    babl.readall()
    return 0
  elseif cmd == "setspin" then
    while true do end
  end
  babl.ewrite("st: unknown command\n")
  return 2
end
