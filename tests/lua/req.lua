-- req.lua: what a call sees of its request.
function handle(req)
  babl.write("args=", table.concat(req.args, "|"), "\n")
  babl.write("nargs=", #req.args, "\n")
  babl.write("id=", req.id, "\n")
  babl.write("time=", string.format("%d", req.time), "\n")
  babl.write("service=", req.service, "\n")
  babl.write("ostime=", os.time(), "\n")
  babl.write("now=", string.format("%.3f", babl.now()), "\n")
end
