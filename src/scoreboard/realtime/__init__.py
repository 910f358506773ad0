"""What can be rebuilt from the store: rank index, pub/sub between processes, rate limits."""
