-- counter.lua: a stateful service.  Each call adds one to the number kept
-- under the key "n" of the service's store and prints the new total.  The
-- store is part of the replicated state: every replica counts the same, and
-- a call that fails leaves the count as it was.
--   babl counter      prints 1, then 2, then 3...
-- Deploy: babl deploy counter contrib/services/counter.lua

function handle(req)
  local n = tonumber(babl.kv.get("n") or "0") + 1
  babl.kv.set("n", tostring(n))
  print(n)
end
