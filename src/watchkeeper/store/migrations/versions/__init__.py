"""The Alembic revisions of the state store, one file each, applied in order."""
