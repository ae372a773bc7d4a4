-- POST /api/v1/signals with the same L3 content on every request, so after
-- the first one every hop is a cache hit. The token comes from $HAL9_TOKEN.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("HAL9_TOKEN") or "")
wrk.body = '{"content":"bench the cached signal path","layer":"L3"}'
