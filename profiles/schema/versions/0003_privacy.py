"""Privacy: the erasure audit log and the database's own secret for hashing user ids.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28

`erasures` keeps one row per forget: when, who asked, an HMAC of the user id
under the database's salt (never the id), and how many rows, vectors and files
went. `privacy_secrets` holds that salt (one row, made on the first forget), in
the database so that every worker hashes alike.
"""

from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("erased_at", sa.BigInteger(), nullable=False),
        sa.Column("requested_by", sa.String(64), nullable=False),
        sa.Column("subject_hash", sa.String(64), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
    )
    op.create_index("ix_erasures_subject", "erasures", ["subject_hash", "id"])
    op.create_table(
        "privacy_secrets",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("privacy_secrets")
    op.drop_index("ix_erasures_subject", table_name="erasures")
    op.drop_table("erasures")
