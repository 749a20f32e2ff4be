"""State in SQL (SQLite by default, PostgreSQL for deployments), events in Parquet."""
