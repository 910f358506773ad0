"""HTTP and WebSocket skin over the service: parse, authenticate, one service call, map errors."""
