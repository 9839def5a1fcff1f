"""The schema of the numbered migrations 1..5 (schema_migrations), frozen.

Revision ID: 0001
Revises:
Create Date: 2026-11-27

Exactly what tastebud created before Alembic: every table and index, with the
same types, nullability, keys and unique constraints, on SQLite and PostgreSQL.
The Python-side column defaults of migrations.py (categories "[]", is_stub False,
attempts 0, ...) were never part of the DDL, so they are not here either.

A database made by that code is stamped at this revision instead of running it;
one made by an older release that had applied only some of migrations 1..5 gets
the missing steps (LEGACY_STEPS) and is then stamped.
"""

from alembic import op
import sqlalchemy as sa

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _schema_migrations() -> None:
    op.create_table(
        "schema_migrations",
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("applied_at", sa.BigInteger(), nullable=False),
    )


def _events_items_quarantine() -> None:  # legacy migration 1
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(64), nullable=False, unique=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("ts", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
    )
    op.create_index("ix_events_user_ts", "events", ["user_id", "ts"])
    op.create_index("ix_events_ts_user", "events", ["ts", "user_id"])
    op.create_table(
        "items",
        sa.Column("item_id", sa.String(64), primary_key=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("categories", sa.Text(), nullable=False),
        sa.Column("tags", sa.Text(), nullable=False),
        sa.Column("attributes", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=True),
        sa.Column("is_stub", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("row_key", sa.String(32), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("header", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
    )
    op.create_index("ix_quarantine_open", "quarantine", ["resolved_at", "id"])


def _profile_versions_and_heads() -> None:  # legacy migration 2
    op.create_table(
        "profile_versions",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("last_event_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("narrative_source", sa.String(16), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("trigger_event_ids", sa.Text(), nullable=False),
    )
    op.create_table(
        "profile_heads",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("last_event_seq", sa.Integer(), nullable=False),
        sa.Column("narrative_source", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
    )


def _recommendation_log() -> None:  # legacy migration 3
    op.create_table(
        "rec_requests",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("profile_version", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("params", sa.Text(), nullable=False),
    )
    op.create_index("ix_rec_requests_user", "rec_requests", ["user_id", "created_at"])
    op.create_table(
        "rec_items",
        sa.Column("request_id", sa.String(36), primary_key=True),
        sa.Column("rank", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("item_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
    )
    op.create_index("ix_rec_items_user_item", "rec_items", ["user_id", "item_id", "created_at"])


def _api_keys() -> None:  # legacy migration 4
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("prefix", sa.String(24), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at", sa.BigInteger(), nullable=True),
    )


def _narrative_queue() -> None:  # legacy migration 5
    op.create_table(
        "narrative_queue",
        sa.Column("user_id", sa.String(64), primary_key=True),
        sa.Column("requested_at", sa.BigInteger(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("not_before", sa.BigInteger(), nullable=True),
    )


# The numbered migrations this revision replaces: version -> (name, tables, step).
LEGACY_STEPS = {
    1: ("events, items, quarantine", ("events", "items", "quarantine"), _events_items_quarantine),
    2: ("profile versions and heads", ("profile_versions", "profile_heads"), _profile_versions_and_heads),
    3: ("recommendation log", ("rec_requests", "rec_items"), _recommendation_log),
    4: ("api keys", ("api_keys",), _api_keys),
    5: ("narrative queue", ("narrative_queue",), _narrative_queue),
}


def upgrade() -> None:
    _schema_migrations()
    for _version, (_name, _tables, step) in sorted(LEGACY_STEPS.items()):
        step()


def downgrade() -> None:
    for table in ("narrative_queue", "api_keys", "rec_items", "rec_requests", "profile_heads",
                  "profile_versions", "quarantine", "items", "events", "schema_migrations"):
        op.drop_table(table)
