"""Opt-out of profiling: one row per user who asked not to be profiled.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

While a user has a row here, no profile, narrative or profile vector is made
for them (their events and keys are kept) and their recommendations are
popularity only; deleting the row (opting back in) lets the next refresh
rebuild the profile. A forget removes the row with everything else.
"""

from alembic import op
import sqlalchemy as sa

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "profiling_optouts",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("opted_out_at", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("profiling_optouts")
