-- exit7.lua: a status of its own.
function handle(req)
  babl.write("seven\n")
  return 7
end
