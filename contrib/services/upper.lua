-- upper.lua: the input with ASCII letters upper-cased, like `tr a-z A-Z`.
-- It copies chunks as they arrive, so output streams while input does:
--   tail -f app.log | babl upper
-- Deploy: babl deploy upper contrib/services/upper.lua

function handle(req)
  while true do
    local chunk = babl.read()
    if not chunk then
      return 0
    end
    babl.write(chunk:upper())
  end
end
