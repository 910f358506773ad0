"""The durable store: the truth. One SQLAlchemy Core implementation for SQLite and PostgreSQL."""
