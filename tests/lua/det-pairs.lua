-- det-pairs.lua: iteration order over string-keyed and mixed tables
-- (tests/integ/determinism.sh).  Must print the same bytes in every process.
local WORDS = [[the quick brown fox jumps over the lazy dog while seven
wizards quietly hex jumbled ploughs of amber zeta alpha omega kappa]]

function handle(req)
  local words = {}
  for w in WORDS:gmatch("%a+") do words[#words + 1] = w end
  -- string keys, with churn: inserts, deletes, reinserts, rehashes
  local t = {}
  for i, w in ipairs(words) do t[w .. i] = i end
  for i = 1, #words, 3 do t[words[i] .. i] = nil end
  for i = 1, 300 do t["k" .. (i * 7919 % 1000)] = i end
  for i = 1, 300, 2 do t["k" .. (i * 7919 % 1000)] = nil end
  for i = 1, 50 do t[string.rep(string.char(65 + i % 26), i % 7 + 1) .. i] = -i end
  local n = 0
  for k, v in pairs(t) do
    babl.write(k, "=", v, " ")
    n = n + 1
  end
  babl.write("\n", n, " string keys\n")
  -- mixed keys: integers (array and hash part), floats, strings, booleans
  local m = {10, 20, 30, [7] = "seven", [-1] = "neg", [2.5] = "f", x = "x", [true] = "T",
    [false] = "F", ["10"] = "s10", [100000] = 1, [1e300] = "big", [-0.5] = "h", [math.huge] = "inf"}
  m[4] = 40
  m[2] = nil
  for k, v in pairs(m) do
    babl.write(math.type(k) or type(k), ":", tostring(k), "=", tostring(v), " ")
  end
  babl.write("\n")
  -- next directly, and modification of existing fields during traversal
  local k = next(m)
  while k ~= nil do
    babl.write(tostring(k), ",")
    m[k] = 0
    k = next(m, k)
  end
  babl.write("\n")
  -- a set built from input-like data, printed through pairs
  local set = {}
  for i = 1, 200 do set[tostring((i * 2654435761) % 4294967296)] = true end
  local keys = {}
  for key in pairs(set) do keys[#keys + 1] = key end
  babl.write(table.concat(keys, " ", 1, 20), " ... ", #keys, "\n")
  -- keys that have no stable order
  local ok, e = pcall(function() for _ in pairs({[{}] = 1, [{}] = 2}) do end end)
  babl.write("table keys: ", tostring(ok), " ", tostring(e), "\n")
  -- the border of a table with holes
  local h = {}
  for i = 1, 100 do h[i] = i end
  for i = 1, 100, 7 do h[i] = nil end
  babl.write("border ", #h, "\n")
end
