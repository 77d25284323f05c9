-- wrk script: POST /v1/validate with the seeded sessions' bodies, round-robin,
-- exactly as 'countersign bench --scenario validate' sends them.
--   BODIES  file of validate bodies, one JSON per line (countersign bench --validate-bodies)
--   APIKEY  the organization's API key
-- Used by bench/wrk/compare.sh.

local path = os.getenv("BODIES") or error("set BODIES to a file of validate bodies")
local bodies = {}
for line in io.lines(path) do
  if #line > 0 then bodies[#bodies + 1] = line end
end
if #bodies == 0 then error("no validate bodies in " .. path) end

wrk.method = "POST"
wrk.path = "/v1/validate"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["apikey"] = os.getenv("APIKEY") or error("set APIKEY")

local i = 0
function request()
  i = i % #bodies + 1
  return wrk.format(nil, nil, nil, bodies[i])
end
