-- wrk script: update checks from random devices of the seeded fleet.
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKENS")) do tokens[#tokens + 1] = line end
local etag = os.getenv("BENCH_ETAG")
wrk.method = "POST"
wrk.body = '{"current_version":"1.0.0","channel":"stable"}'
wrk.headers["Content-Type"] = "application/json"
if etag and etag ~= "" then wrk.headers["If-None-Match"] = etag end
request = function()
  wrk.headers["Authorization"] = "Bearer " .. tokens[math.random(#tokens)]
  return wrk.format()
end
