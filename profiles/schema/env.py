"""Alembic environment of tastebud's event store.

Runs only programmatically: `tastebud.profiles.migrations.migrate(conn)` builds the
Alembic Config in code and passes its SQLAlchemy connection (already inside the
caller's transaction, under the schema lock) as config.attributes["connection"].
There is no alembic.ini and no offline (--sql) mode.

Revisions live in versions/NNNN_name.py with revision id "NNNN", one line of
history. Each holds its own frozen DDL (literal columns, never the live Table
objects of migrations.py); on SQLite, alter tables with op.batch_alter_table.
"""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("tastebud migrations run through tastebud.profiles.migrations.migrate(connection)")

context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():  # a no-op inside the caller's transaction, which commits it
    context.run_migrations()
