-- det-gc.lua: memory as the script sees it (collectgarbage("count")) after
-- churn in tables with string keys (tests/integ/determinism.sh).
function handle(req)
  local t = {}
  for round = 1, 20 do
    for i = 1, 500 do t["key" .. (i * round * 7919 % 3001)] = string.rep("v", i % 50) end
    for i = 1, 500, 3 do t["key" .. (i * round * 104729 % 3001)] = nil end
  end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  babl.write("entries ", n, "\n")
  babl.write("count ", string.format("%.3f", collectgarbage("count")), "\n")
end
