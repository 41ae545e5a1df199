-- wrk script: List Events pages (1000 items from a random stored t) or Latest Events.
-- Set by environment (as random_key.lua): CTEL_BASE, CTEL_TOKEN, CTEL_T0, CTEL_SPAN, and
--   CTEL_PAGE   "list" (?from=<random t>&to=<t0 + span>&limit=1000) or "latest" (/latest)
local base = os.getenv("CTEL_BASE")
local token = os.getenv("CTEL_TOKEN")
local t0 = tonumber(os.getenv("CTEL_T0") or "1700000000")
local span = tonumber(os.getenv("CTEL_SPAN"))
local page = os.getenv("CTEL_PAGE") or "list"

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
end

request = function()
  local path
  if page == "latest" then
    path = base .. "/latest"
  else
    local from = t0 + math.random(0, math.max(span - 300, 1))
    path = base .. "?from=" .. from .. "&to=" .. (t0 + span) .. "&limit=1000"
  end
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end
