-- json.lua: a JSON pretty-printer in plain Lua.
--   babl json < doc.json        two-space indents, one member per line
--   babl json -c < doc.json     compact: no whitespace at all
-- Members keep their order and numbers and strings their exact spelling
-- (the printer re-lays the tokens; it does not convert values).  Several
-- values in a row (JSON lines) are printed one after another.  Malformed
-- input ends the call with status 1 and "json: line N: what" on stderr.
-- Deploy: babl deploy json contrib/services/json.lua

local MAX_DEPTH = 200

-- Lay out the JSON text src; return the output as a string.
local function format(src, compact)
  local pos, line = 1, 1
  local out, n = {}, 0

  local function emit(s)
    n = n + 1
    out[n] = s
  end

  local function fail(what)
    error({json = "line " .. line .. ": " .. what}, 0)
  end

  local function skip()
    local s, e = src:find("^[ \t\r\n]+", pos)
    if s then
      local _, nl = src:sub(s, e):gsub("\n", "")
      line = line + nl
      pos = e + 1
    end
  end

  local function newline(depth)
    if not compact then
      emit("\n" .. string.rep("  ", depth))
    end
  end

  local function str()
    local i = pos + 1
    while true do
      local s = src:find('["\\%c]', i)
      if not s then
        fail("unterminated string")
      end
      local ch = src:sub(s, s)
      if ch == '"' then
        emit(src:sub(pos, s))
        pos = s + 1
        return
      elseif ch == "\\" then
        local esc = src:sub(s + 1, s + 1)
        if esc == "u" then
          if not src:find("^%x%x%x%x", s + 2) then
            fail("bad \\u escape")
          end
          i = s + 6
        elseif esc ~= "" and ('"\\/bfnrt'):find(esc, 1, true) then
          i = s + 2
        else
          fail("bad escape in string")
        end
      else
        fail("control character in string")
      end
    end
  end

  local function number()
    local s, e = src:find("^%-?0", pos)
    if not s then
      s, e = src:find("^%-?[1-9]%d*", pos)
    end
    if not s then
      fail("unexpected character '" .. src:sub(pos, pos) .. "'")
    end
    local _, e2 = src:find("^%.%d+", e + 1)
    e = e2 or e
    _, e2 = src:find("^[eE][-+]?%d+", e + 1)
    e = e2 or e
    emit(src:sub(pos, e))
    pos = e + 1
  end

  local value

  local function container(open, close, depth)
    if depth >= MAX_DEPTH then
      fail("nesting deeper than " .. MAX_DEPTH)
    end
    pos = pos + 1
    skip()
    if src:sub(pos, pos) == close then
      emit(open .. close)
      pos = pos + 1
      return
    end
    emit(open)
    while true do
      newline(depth + 1)
      if close == "}" then
        if src:sub(pos, pos) ~= '"' then
          fail("expected a string key")
        end
        str()
        skip()
        if src:sub(pos, pos) ~= ":" then
          fail("expected ':'")
        end
        pos = pos + 1
        emit(compact and ":" or ": ")
        skip()
      end
      value(depth + 1)
      skip()
      local ch = src:sub(pos, pos)
      pos = pos + 1
      if ch == close then
        break
      elseif ch ~= "," then
        pos = pos - 1
        fail("expected ',' or '" .. close .. "'")
      end
      emit(",")
      skip()
    end
    newline(depth)
    emit(close)
  end

  function value(depth)
    local ch = src:sub(pos, pos)
    if ch == "{" then
      container("{", "}", depth)
    elseif ch == "[" then
      container("[", "]", depth)
    elseif ch == '"' then
      str()
    elseif ch == "" then
      fail("unexpected end of input")
    else
      for _, lit in ipairs({"true", "false", "null"}) do
        if src:sub(pos, pos + #lit - 1) == lit then
          emit(lit)
          pos = pos + #lit
          return
        end
      end
      number()
    end
  end

  skip()
  if pos > #src then
    fail("no value")
  end
  while pos <= #src do
    value(0)
    emit("\n")
    skip()
  end
  return table.concat(out)
end

function handle(req)
  local compact = false
  for _, a in ipairs(req.args) do
    if a == "-c" then
      compact = true
    else
      babl.ewrite("usage: json [-c]\n")
      return 2
    end
  end
  local ok, res = pcall(format, babl.readall(), compact)
  if not ok then
    if type(res) == "table" and res.json then
      babl.ewrite("json: ", res.json, "\n")
      return 1
    end
    error(res, 0)
  end
  babl.write(res)
  return 0
end
