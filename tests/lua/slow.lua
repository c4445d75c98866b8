-- slow.lua: "wait" waits for input, "spin" loops; both run into the wall clock.
function handle(req)
  if req.args[1] == "spin" then
    while true do end
  elseif req.args[1] == "wait" then
    babl.read()
  end
  babl.write("quick\n")
end
