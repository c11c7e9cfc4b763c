-- wrk script: hawkBit DDI base polls from random devices of the seeded fleet
-- (lines "serial token" in BENCH_DDI_TARGETS; tenant "bench").
local targets = {}
for line in io.lines(os.getenv("BENCH_DDI_TARGETS")) do
  local serial, token = line:match("(%S+) (%S+)")
  targets[#targets + 1] = {serial, token}
end
wrk.method = "GET"
request = function()
  local target = targets[math.random(#targets)]
  wrk.headers["Authorization"] = "TargetToken " .. target[2]
  return wrk.format(nil, "/bench/controller/v1/" .. target[1])
end
