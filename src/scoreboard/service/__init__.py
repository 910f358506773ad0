"""The service core: every rule lives here; HTTP and WebSocket code is a thin skin over it."""
