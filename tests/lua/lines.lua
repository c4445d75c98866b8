-- lines.lua: echo each input line back as it arrives, numbered.
function handle(req)
  local n = 0
  for line in babl.lines() do
    n = n + 1
    babl.write(n, ":", line, "\n")
  end
  babl.write("end:", n, "\n")
end
