-- wrk script: POST the body in $BODY_FILE as JSON; $CLOSE=1 opens a new connection per request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = assert(io.open(os.getenv("BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
if os.getenv("CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end
