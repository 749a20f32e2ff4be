"""Ingest: parse event batches, validate them against the model's schema, store them durably."""
