-- wrk script: GET random existing events. Set by environment:
--   CTEL_BASE   path up to .../telemetry/events
--   CTEL_TOKEN  bearer token;  CTEL_SPAN  number of seconds of t holding 4 events each
local base = os.getenv("CTEL_BASE")
local token = os.getenv("CTEL_TOKEN")
local span = tonumber(os.getenv("CTEL_SPAN"))
local t0 = 1700000000

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local path = base .. "/" .. (t0 + math.random(0, span - 1)) .. "." .. math.random(0, 3)
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end
