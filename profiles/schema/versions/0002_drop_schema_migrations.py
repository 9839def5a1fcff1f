"""Drop schema_migrations: alembic_version records the schema from here on.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

A fresh database (0001 then 0002) and an adopted one (stamped 0001, then 0002)
end up with the same tables. The downgrade recreates the table with versions
1..5 recorded, which is what the pre-Alembic tastebud expects to find.
"""

import time

from alembic import op
import sqlalchemy as sa

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("schema_migrations")


def downgrade() -> None:
    table = op.create_table(
        "schema_migrations",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("applied_at", sa.BigInteger(), nullable=False),
    )
    now = int(time.time() * 1000)
    names = ["events, items, quarantine", "profile versions and heads", "recommendation log", "api keys",
             "narrative queue"]
    op.bulk_insert(table, [{"version": v, "name": n, "applied_at": now} for v, n in enumerate(names, 1)])
