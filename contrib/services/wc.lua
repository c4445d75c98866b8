-- wc.lua: count the lines, words and bytes of the input, as wc(1) does for
-- its standard input.  Words are runs of characters other than space, tab,
-- newline, vertical tab, form feed and carriage return.
--   babl wc < file          lines, words, bytes, in columns 7 wide
--   babl wc -l < file       only the lines (also -w, -c, and combinations
--                           such as -lw); one count prints without padding
-- Deploy: babl deploy wc contrib/services/wc.lua

local function usage()
  babl.ewrite("usage: wc [-l] [-w] [-c]\n")
  return 2
end

function handle(req)
  local want = {}
  for _, a in ipairs(req.args) do
    if not a:match("^%-[lwc]+$") then
      return usage()
    end
    for f in a:sub(2):gmatch(".") do
      want[f] = true
    end
  end
  if not (want.l or want.w or want.c) then
    want = {l = true, w = true, c = true}
  end

  local lines, words, bytes = 0, 0, 0
  local inword = false -- the previous chunk ended inside a word
  while true do
    local chunk = babl.read()
    if not chunk then
      break
    end
    bytes = bytes + #chunk
    local _, nl = chunk:gsub("\n", "")
    lines = lines + nl
    local _, nw = chunk:gsub("[^ \t\n\v\f\r]+", "")
    if inword and chunk:find("^[^ \t\n\v\f\r]") then
      nw = nw - 1 -- the first run continues the last chunk's word
    end
    words = words + nw
    inword = chunk:find("[^ \t\n\v\f\r]$") ~= nil
  end

  local cols = {}
  if want.l then cols[#cols + 1] = lines end
  if want.w then cols[#cols + 1] = words end
  if want.c then cols[#cols + 1] = bytes end
  if #cols == 1 then
    babl.write(cols[1], "\n")
  else
    for i, v in ipairs(cols) do
      cols[i] = string.format("%7d", v)
    end
    babl.write(table.concat(cols, " "), "\n")
  end
  return 0
end
