-- wrk script: update checks from random devices that run the newest release
-- (BENCH_VERSION): the answer is 204, nothing to install.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
wrk.method = "POST"
wrk.body = '{"current_version":"' .. os.getenv("BENCH_VERSION") .. '","channel":"stable"}'
wrk.headers["Content-Type"] = "application/json"
request = function()
  wrk.headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
  return wrk.format()
end
