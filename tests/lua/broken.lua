-- broken.lua: a syntax error on line 4.
function handle(req)
  local x = 1
  x = = 2
  return 0
end
