-- wrk script: POST /digest with a fresh random 32-byte digest per request
-- (docs/BENCHMARKS.md). wrk -t2 -c64 -d10s --latency -s post_digest.lua http://127.0.0.1:18100
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end
request = function()
  local t = {}
  for i = 1, 32 do t[i] = string.char(math.random(0, 255)) end
  return wrk.format("POST", "/digest", {["Content-Type"] = "application/octet-stream"}, table.concat(t))
end
local shown = 0
response = function(status, headers, body)
  if status ~= 200 and shown < 3 then shown = shown + 1; print(status, body) end
end
