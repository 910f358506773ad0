"""The server's transport: uvicorn's HTTP and WebSocket protocols with limits on what one client
can make the process hold (request-head size, time, connections per address), enforced before
the ASGI app sees a request. `serve.run` is what `scoreboard serve` runs."""
