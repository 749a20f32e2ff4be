"""The audit trail (``wk_audit``), append-only: the database itself refuses to change or
delete its rows (a trigger raising on SQLite, a trigger function on PostgreSQL).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels: str | None = None
depends_on: str | None = None

MESSAGE = "wk_audit is append-only"

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER wk_audit_no_{what.lower()} BEFORE {what} ON wk_audit "
    f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
    for what in ("UPDATE", "DELETE")
]
POSTGRES_FUNCTION = f"""
CREATE FUNCTION wk_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '{MESSAGE}' USING ERRCODE = 'insufficient_privilege';
END
$$
"""
POSTGRES_TRIGGER = (
    "CREATE TRIGGER wk_audit_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON wk_audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION wk_audit_append_only()"
)


def upgrade() -> None:
    op.create_table(
        "wk_audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("model", sa.String(200)),
        sa.Column("target", sa.String(400), nullable=False),
        sa.Column("before", sa.JSON),
        sa.Column("after", sa.JSON),
    )
    op.create_index("ix_wk_audit_model", "wk_audit", ["model", "id"])
    op.create_index("ix_wk_audit_at", "wk_audit", ["at"])
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    elif dialect == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for what in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS wk_audit_no_{what}")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS wk_audit_append_only ON wk_audit")
        op.execute("DROP FUNCTION IF EXISTS wk_audit_append_only()")
    op.drop_index("ix_wk_audit_at", table_name="wk_audit")
    op.drop_index("ix_wk_audit_model", table_name="wk_audit")
    op.drop_table("wk_audit")
