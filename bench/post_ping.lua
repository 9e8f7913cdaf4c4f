-- wrk script: POST with the bench key, no body
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "bench-token-0123456789")
