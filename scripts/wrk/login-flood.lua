-- A wrong-password flood on POST /api/v1/auth/login. The user name comes
-- from $HAL9_FLOOD_USER (an existing user, so each attempt costs a bcrypt
-- comparison unless something refuses it first).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"username":"' .. (os.getenv("HAL9_FLOOD_USER") or "victim") .. '","password":"not-the-password"}'
