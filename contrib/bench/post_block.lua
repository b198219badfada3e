-- wrk script: single-record POST /v1/chains/dev-chain/blocks, a new height per
-- request (docs/BENCHMARKS.md). The chain's token comes from $TOKEN:
-- TOKEN=btcts_… wrk -t2 -c64 -d10s --latency -s post_block.lua http://127.0.0.1:18100
local n = 0
local base = 0
local token = os.getenv("TOKEN")
function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
  base = math.random(1, 2^20) * 1000000
end
request = function()
  n = n + 1
  local h = base + n
  local body = string.format('{"blocks":[{"height":%d,"block_hash":"%064x","staker_set_digest":"%s"}]}', h, h, string.rep("ab", 32))
  return wrk.format("POST", "/v1/chains/dev-chain/blocks",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
