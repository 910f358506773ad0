"""Baselines the bench measures the service against, each a process of its own."""
