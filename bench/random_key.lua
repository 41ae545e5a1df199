-- wrk script: GET random existing events or snapshots. Set by environment:
--   CTEL_BASE   path up to .../telemetry/events (or .../telemetry/snapshots)
--   CTEL_TOKEN  bearer token
--   CTEL_T0, CTEL_STEP, CTEL_SPAN   stored keys' t are CTEL_T0 + CTEL_STEP * i, 0 <= i < CTEL_SPAN
--   CTEL_PER_T  events per t (n = 0 .. CTEL_PER_T - 1, path t.n); 0 for snapshots (path t)
local base = os.getenv("CTEL_BASE")
local token = os.getenv("CTEL_TOKEN")
local t0 = tonumber(os.getenv("CTEL_T0") or "1700000000")
local step = tonumber(os.getenv("CTEL_STEP") or "1")
local span = tonumber(os.getenv("CTEL_SPAN"))
local per_t = tonumber(os.getenv("CTEL_PER_T") or "4")

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local path = base .. "/" .. (t0 + step * math.random(0, span - 1))
  if per_t > 0 then
    path = path .. "." .. math.random(0, per_t - 1)
  end
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end
