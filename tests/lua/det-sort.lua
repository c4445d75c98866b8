-- det-sort.lua: sorting records with ties (tests/integ/determinism.sh).
local NAMES = {"ann", "bob", "cy", "dee", "eve", "fay", "gus", "hal", "ivy", "jo"}

local function show(recs)
  for _, r in ipairs(recs) do babl.write(r.score, ":", r.name, " ") end
  babl.write("\n")
end

function handle(req)
  local recs = {}
  for i = 1, 200 do
    recs[i] = {name = NAMES[(i * 7) % #NAMES + 1] .. i, score = (i * 37) % 5}
  end
  table.sort(recs, function(a, b) return a.score < b.score end)
  show(recs)
  table.sort(recs, function(a, b) return a.score > b.score end)
  show(recs)
  -- every element equal
  table.sort(recs, function() return false end)
  show(recs)
  local n = {}
  for i = 1, 300 do n[i] = (i * 7919) % 101 end
  table.sort(n)
  babl.write(table.concat(n, ","), "\n")
  local s = {}
  for i = 1, 100 do s[i] = NAMES[i % #NAMES + 1] end
  table.sort(s)
  babl.write(table.concat(s, ","), "\n")
  -- an invalid order function: an error or some order, but always the same
  local ok, e = pcall(table.sort, n, function() return true end)
  babl.write("invalid order: ", tostring(ok), " ", tostring(e), "\n")
  babl.write(table.concat(n, ","), "\n")
  -- words of the input sorted by count, ties in input order
  local count, order = {}, {}
  for line in babl.lines() do
    for w in line:gmatch("%S+") do
      if not count[w] then order[#order + 1] = w end
      count[w] = (count[w] or 0) + 1
    end
  end
  table.sort(order, function(a, b) return count[a] > count[b] end)
  for i = 1, math.min(#order, 40) do babl.write(order[i], "=", count[order[i]], " ") end
  babl.write("\n")
end
