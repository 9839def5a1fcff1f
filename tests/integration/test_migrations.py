"""Schema migrations: Alembic revisions with frozen DDL, run by the first open of a store.

- tests/data/home-before-alembic.db is a home's database made by the code before
  Alembic (numbered migrations 1..5 in schema_migrations): the CLI commands
  `ingest catalog`, `ingest events` (one bad row -> quarantine), `refresh --all
  --no-narratives`, `keys create` (operator, user), `recommend` (u1, u2), one more
  event and `refresh`, plus one narrative_queue row; WAL checkpointed, page size 1 KiB.
- tests/data/migrations_before_alembic.py is that code's runner, verbatim: it makes
  "old" databases where a test needs a fresh one (PostgreSQL, a partial history).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from tastebud.errors import StoreError
from tastebud.profiles import migrations
from tastebud.profiles.migrations import alembic_config, head_revision, metadata
from tastebud.profiles.store import EventStore

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[1] / "data"
FIXTURE = DATA / "home-before-alembic.db"
TASTEBUD = Path(sys.executable).with_name("tastebud")
BOOKKEEPING = {"alembic_version", "schema_migrations"}
FIXTURE_COUNTS = {"events": 8, "items": 6, "quarantine": 1, "profile_versions": 4, "profile_heads": 3,
                  "rec_requests": 2, "rec_items": 6, "api_keys": 2, "narrative_queue": 1}
UPGRADED = "database schema upgraded to"  # the log line of a process that ran the revisions


def legacy_runner():
    spec = importlib.util.spec_from_file_location("migrations_before_alembic", DATA / "migrations_before_alembic.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sqlite_rows(path: Path) -> dict[str, list[tuple]]:
    with sqlite3.connect(path) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {n: sorted(conn.execute(f"SELECT * FROM {n}").fetchall(), key=repr) for n in names}


def sqlite_ddl(path: Path) -> dict[str, str]:
    """The CREATE statement of every table and index, as SQLite stores it."""
    with sqlite3.connect(path) as conn:
        return {name: sql for name, tbl, sql in conn.execute("SELECT name, tbl_name, sql FROM sqlite_master")
                if sql and tbl not in BOOKKEEPING}


def describe(engine) -> dict:
    """Tables, columns, keys and indexes as SQLAlchemy reflects them (bookkeeping tables left out)."""
    insp = inspect(engine)
    out = {}
    for t in sorted(set(insp.get_table_names()) - BOOKKEEPING):
        out[t] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"], c.get("default"), c.get("autoincrement"))
                        for c in insp.get_columns(t)],
            "pk": insp.get_pk_constraint(t),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(t)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), i["unique"]) for i in insp.get_indexes(t)
                              if not i.get("duplicates_constraint")),  # PostgreSQL: a unique constraint's index
            "foreign_keys": insp.get_foreign_keys(t),
        }
    return out


def assert_matches_metadata(described: dict) -> None:
    """The reflected schema has exactly the metadata's tables, columns (in order), nullability,
    primary keys, unique columns and indexes."""
    assert sorted(described) == sorted(metadata.tables)
    for name, table in metadata.tables.items():
        got = described[name]
        assert [(c[0], c[2]) for c in got["columns"]] == [(c.name, c.nullable) for c in table.columns], name
        assert got["pk"]["constrained_columns"] == [c.name for c in table.primary_key.columns], name
        assert sorted(cols for _, cols in got["unique"]) == sorted((c.name,) for c in table.columns if c.unique), name
        assert sorted((n, cols) for n, cols, _ in got["indexes"]) == sorted(
            (i.name, tuple(c.name for c in i.columns)) for i in table.indexes), name


def revision_of(url: str) -> list[tuple]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()


def cli(home: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TASTEBUD_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env = {k: v for k, v in env.items() if not k.startswith("TASTEBUD_") or k == "TASTEBUD_HOME"}
    return subprocess.run([str(TASTEBUD), *args], env=env, capture_output=True, text=True, timeout=300)


def json_out(done: subprocess.CompletedProcess):
    import json

    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def old_home(tmp_path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    shutil.copyfile(FIXTURE, home / "tastebud.db")
    return home


# ---- a home made before Alembic ------------------------------------------------


def test_home_made_before_alembic_upgrades_in_place_on_first_command(old_home):
    db = old_home / "tastebud.db"
    before, ddl_before = sqlite_rows(db), sqlite_ddl(db)
    assert "alembic_version" not in before and [r[:2] for r in before["schema_migrations"]] == [
        (1, "events, items, quarantine"), (2, "profile versions and heads"), (3, "recommendation log"),
        (4, "api keys"), (5, "narrative queue")]
    assert {t: len(before[t]) for t in FIXTURE_COUNTS} == FIXTURE_COUNTS

    status = json_out(cli(old_home, "status", "--json"))  # the first command to open it

    assert (status["events"], status["users"], status["items"], status["profiles"], status["quarantined"]) == (8, 3, 6, 3, 1)
    after = sqlite_rows(db)
    assert after["alembic_version"] == [(head_revision(),)]
    assert "schema_migrations" not in after  # dropped by revision 0002
    assert {t: after[t] for t in FIXTURE_COUNTS} == {t: before[t] for t in FIXTURE_COUNTS}  # every row, as it was
    after_ddl = sqlite_ddl(db)  # the tables themselves untouched (later revisions may add new ones)
    assert {name: sql for name, sql in after_ddl.items() if name in ddl_before} == ddl_before

    keys = json_out(cli(old_home, "keys", "list", "--json"))
    assert sorted((k["key_id"], k["role"]) for k in keys) == [("47f26dd9", "user"), ("b9a15f00", "operator")]
    profile = json_out(cli(old_home, "profile", "show", "u1", "--json"))
    assert (profile["user_id"], profile["version"]) == ("u1", 2)
    why = json_out(cli(old_home, "why", "u1", "m6", "--json"))
    assert (why["recommended"], why["request_id"], why["rank"]) == (True, "c43f7716-8b13-4408-8a4d-ba4847988d49", 1)
    assert sqlite_rows(db)["alembic_version"] == [(head_revision(),)]


def test_partial_pre_alembic_history_gets_the_missing_tables(tmp_path, monkeypatch):
    """A database of an older release that had applied only migrations 1..3."""
    legacy = legacy_runner()
    monkeypatch.setattr(legacy, "MIGRATIONS", legacy.MIGRATIONS[:3])
    db, url = tmp_path / "old.db", f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        assert legacy.migrate(conn) == [1, 2, 3]
        conn.execute(legacy.events.insert().values(event_id="e1", user_id="u", item_id="i", type="view", ts=1))
    engine.dispose()

    EventStore(url).close()

    fresh = tmp_path / "fresh.db"
    EventStore(f"sqlite:///{fresh}").close()
    assert sqlite_ddl(db) == sqlite_ddl(fresh)
    rows = sqlite_rows(db)
    assert rows["alembic_version"] == [(head_revision(),)] and "schema_migrations" not in rows
    assert [r[1] for r in rows["events"]] == ["e1"]


# ---- fresh databases: the revisions make the metadata's schema -------------------


def test_revisions_make_the_schema_of_the_metadata_and_of_the_old_code_on_sqlite(tmp_path):
    fresh, meta, old = (tmp_path / f"{n}.db" for n in ("fresh", "meta", "old"))
    EventStore(f"sqlite:///{fresh}").close()
    for path, make in ((meta, metadata.create_all), (old, legacy_runner().migrate)):
        engine = create_engine(f"sqlite:///{path}")
        with engine.begin() as conn:
            make(conn)
        engine.dispose()

    assert sqlite_rows(fresh)["alembic_version"] == [(head_revision(),)]
    assert set(sqlite_rows(fresh)) - BOOKKEEPING == set(metadata.tables) and "schema_migrations" not in sqlite_rows(fresh)
    # the same CREATE TABLE / CREATE INDEX text as the metadata and as the old code (and the fixture)
    # (tables added by revisions after 0002, such as 0003's privacy tables, are the new code's only)
    old_ddl = sqlite_ddl(old)
    assert sqlite_ddl(fresh) == sqlite_ddl(meta) and old_ddl == sqlite_ddl(FIXTURE)
    assert {name: sql for name, sql in sqlite_ddl(fresh).items() if name in old_ddl} == old_ddl
    described = describe(create_engine(f"sqlite:///{fresh}"))
    assert described == describe(create_engine(f"sqlite:///{meta}"))
    assert_matches_metadata(described)


def test_revision_files_form_one_line_and_hold_their_own_ddl():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    assert script.get_heads() == [head_revision()]  # what the cheap check at open compares with
    files = sorted(p for p in (migrations.SCHEMA_DIR / "versions").glob("*.py"))
    previous = None
    for path in files:
        number = path.name[:4]
        rev = script.get_revision(number)
        assert (rev.revision, rev.down_revision, Path(rev.path).name) == (number, previous, path.name)
        source = path.read_text()
        assert "import tastebud" not in source and "from tastebud" not in source, f"{path.name}: frozen DDL only"
        previous = number
    assert previous == head_revision()


def test_opening_a_store_at_head_waits_for_no_writer(tmp_path):
    """The check at open is two reads: a long write (an ingestion) does not block it."""
    import threading

    db = tmp_path / "db.db"
    EventStore(f"sqlite:///{db}").close()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # holds the database's write lock, as the schema lock would need
    opened = threading.Event()

    def open_store():
        EventStore(f"sqlite:///{db}").close()
        opened.set()

    thread = threading.Thread(target=open_store, daemon=True)
    thread.start()
    try:
        assert opened.wait(5), "opening a store at head waited for the write lock"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
        thread.join(60)


def test_opening_a_store_at_head_does_not_load_alembic(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.db'}"
    EventStore(url).close()
    code = ("import sys; from tastebud.profiles.store import EventStore; "
            f"EventStore({url!r}).close(); print('alembic' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr


# ---- concurrency ---------------------------------------------------------------

CHILD = """
import logging, sys, time
logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
logging.getLogger("tastebud.migrations").setLevel(logging.INFO)
from tastebud.profiles.store import EventStore
url, start_at = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start_at - time.time()))
EventStore(url).close()
print("opened")
"""


def open_at_once(url: str, n: int) -> list[subprocess.CompletedProcess]:
    start_at = time.time() + 4.0  # after every child has imported
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, url, str(start_at)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(n)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return results


def assert_all_opened_one_upgraded(results: list[subprocess.CompletedProcess]) -> None:
    failed = [r.stderr[-2000:] for r in results if r.returncode or r.stdout.strip() != "opened"]
    assert not failed, failed[0]
    upgraders = [r for r in results if UPGRADED in r.stderr]
    assert len(upgraders) == 1, [r.stderr for r in results]


@pytest.mark.parametrize("round_", range(3))
def test_processes_opening_one_fresh_sqlite_database_at_once(tmp_path, round_):
    db = tmp_path / "home" / "tastebud.db"
    results = open_at_once(f"sqlite:///{db}", 6)
    assert_all_opened_one_upgraded(results)
    assert sqlite_rows(db)["alembic_version"] == [(head_revision(),)]
    fixture_ddl = sqlite_ddl(FIXTURE)  # plus the tables of revisions after 0002
    assert {name: sql for name, sql in sqlite_ddl(db).items() if name in fixture_ddl} == fixture_ddl
    assert set(sqlite_ddl(db)) == set(sqlite_ddl(FIXTURE)) | {'erasures', 'ix_erasures_subject', 'privacy_secrets', 'profiling_optouts'}


def test_processes_opening_one_pre_alembic_database_at_once(old_home):
    db = old_home / "tastebud.db"
    before = sqlite_rows(db)
    assert_all_opened_one_upgraded(open_at_once(f"sqlite:///{db}", 6))
    after = sqlite_rows(db)
    assert after["alembic_version"] == [(head_revision(),)]
    assert {t: after[t] for t in FIXTURE_COUNTS} == {t: before[t] for t in FIXTURE_COUNTS}


# ---- later revisions, failures, foreign databases ----------------------------------

NEW_COLUMN = '''
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
    op.create_index("ix_api_keys_user", "api_keys", ["user_id"])
'''

FAILING = '''
from alembic import op
import sqlalchemy as sa

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("scratch", sa.Column("id", sa.Integer(), primary_key=True))
    raise RuntimeError("revision 0003 failed half-way")
'''


@pytest.fixture
def extra_revision(tmp_path, monkeypatch):
    """add(source): the packaged revisions plus 0003_test.py, in a copy of the script folder."""
    def add(source: str) -> None:
        folder = tmp_path / "schema"
        shutil.copytree(migrations.SCHEMA_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
        head = migrations.head_revision()  # the test revision follows the packaged head
        source = source.replace('revision = "0003"\ndown_revision = "0002"', f'revision = "0099"\ndown_revision = "{head}"')
        (folder / "versions" / "0099_test.py").write_text(source)
        monkeypatch.setattr(migrations, "SCHEMA_DIR", folder)
        migrations.head_revision.cache_clear()

    yield add
    migrations.head_revision.cache_clear()


def test_a_later_revision_alters_an_existing_database(old_home, extra_revision):
    db = old_home / "tastebud.db"
    before = sqlite_rows(db)
    extra_revision(NEW_COLUMN)
    EventStore(f"sqlite:///{db}").close()
    after = sqlite_rows(db)
    assert after["alembic_version"] == [("0099",)]
    assert after["api_keys"] == [row + (None,) for row in before["api_keys"]]
    assert {t: after[t] for t in FIXTURE_COUNTS if t != "api_keys"} == {t: before[t] for t in FIXTURE_COUNTS if t != "api_keys"}
    assert "ix_api_keys_user" in sqlite_ddl(db)


def test_a_failing_revision_leaves_the_database_as_it_was(old_home, extra_revision):
    """Stamping, 0002 and 0003 run in one transaction under the lock: all or nothing."""
    db = old_home / "tastebud.db"
    before = sqlite_rows(db)
    extra_revision(FAILING)
    with pytest.raises(RuntimeError, match="failed half-way"):
        EventStore(f"sqlite:///{db}")
    assert sqlite_rows(db) == before  # still pre-Alembic: schema_migrations, no alembic_version, no scratch


def test_a_database_from_a_newer_tastebud_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.db'}"
    EventStore(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    engine.dispose()
    with pytest.raises(StoreError, match="0999"):
        EventStore(url)


def test_tables_without_any_schema_record_are_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.db'}"
    engine = create_engine(url)
    metadata.create_all(engine)
    engine.dispose()
    with pytest.raises(StoreError, match="not created by tastebud"):
        EventStore(url)


# ---- PostgreSQL (the server of test_store_postgres, when it can start) -------------

from tests.integration.test_store_postgres import pg_url  # noqa: E402,F401 - the fixture
from tests.services import pg_bin as _pg_bin  # noqa: E402


@pytest.fixture
def pg_database(pg_url):
    """new(): the URL of a new, empty database on the test server."""
    import uuid

    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    made = []

    def new() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
        made.append(name)
        return pg_url.replace("@/postgres?", f"@/{name}?")

    yield new
    with admin.connect() as conn:
        for name in made:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def pg_dump_schema(url: str) -> str:
    pg_dump = _pg_bin("pg_dump")
    if not pg_dump:
        pytest.skip("pg_dump not installed")
    name, host = url.split("@/", 1)[1].split("?host=")
    done = subprocess.run([pg_dump, "--schema-only", "--no-owner", "-h", host, "-U", "postgres",
                           "-T", "alembic_version", "-T", "schema_migrations", name],
                          capture_output=True, text=True, check=True)
    return "\n".join(line for line in done.stdout.splitlines()
                     if not line.startswith(("--", "\\restrict", "\\unrestrict", "SET ", "SELECT pg_catalog.set_config")))


def test_revisions_make_the_schema_of_the_metadata_and_of_the_old_code_on_postgresql(pg_database):
    fresh, meta, old = pg_database(), pg_database(), pg_database()
    EventStore(fresh).close()
    for url, make in ((meta, metadata.create_all), (old, legacy_runner().migrate)):
        engine = create_engine(url)
        with engine.begin() as conn:
            make(conn)
        engine.dispose()

    assert revision_of(fresh) == [(head_revision(),)]
    engines = [create_engine(u) for u in (fresh, meta, old)]
    try:
        assert "schema_migrations" not in inspect(engines[0]).get_table_names()
        described = [describe(e) for e in engines]
        assert described[0] == described[1]
        assert {t: v for t, v in described[0].items() if t in described[2]} == described[2]  # 0003+ only add tables
        assert_matches_metadata(described[0])
    finally:
        for e in engines:
            e.dispose()
    assert pg_dump_schema(fresh) == pg_dump_schema(meta)  # sequences, constraints, indexes


def test_postgresql_database_made_before_alembic_is_stamped_and_upgraded(pg_database):
    url = pg_database()
    legacy = legacy_runner()
    engine = create_engine(url)
    with engine.begin() as conn:
        assert legacy.migrate(conn) == [1, 2, 3, 4, 5]
        conn.execute(legacy.events.insert(), [{"event_id": f"e{i}", "user_id": "u", "item_id": "i", "type": "view", "ts": i}
                                              for i in range(3)])
        conn.execute(legacy.api_keys.insert().values(key_id="k1", prefix="tb_k1", secret_sha256="0" * 64,
                                                     role="operator", created_at=1))
    engine.dispose()

    store = EventStore(url)
    try:
        assert [e.event_id for e in store.events_for_user("u")] == ["e0", "e1", "e2"]
        assert store.write_batch([legacy_event("e3")]) == (1, 0)  # seq still counts on from the old rows
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT max(seq) FROM events")).scalar() == 4
            assert conn.execute(text("SELECT key_id FROM api_keys")).scalars().all() == ["k1"]
            assert "schema_migrations" not in inspect(conn).get_table_names()
    finally:
        store.close()
    assert revision_of(url) == [(head_revision(),)]


def legacy_event(event_id: str):
    from tastebud.profiles.events import Event

    return Event(event_id, "u", "i", "view", 10_000, None, None)


def test_processes_opening_one_fresh_postgresql_database_at_once(pg_database):
    url = pg_database()
    assert_all_opened_one_upgraded(open_at_once(url, 6))
    assert revision_of(url) == [(head_revision(),)]
