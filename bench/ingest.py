"""Ingestion speed: our real MovieLens ingest against a raw sqlite3 insert of the same rows.

    .venv/bin/python bench/ingest.py [DIR] [--repeat N]      (or: make bench)

Ours: `tastebud.profiles.movielens.ingest_movielens` with an `Ingestor` (batch size
from the setting `ingest_batch_size`, 20,000 rows per transaction by default) into
a fresh TASTEBUD_HOME, timed end to end: reading and decoding movies.csv,
ratings.csv and tags.csv, validation, event-id hashing, the catalog upsert (with
its unchanged-item check), stub checks, duplicate accounting and a commit per
batch.

Raw baseline: exactly the rows our run stored (all events and all items, read
back from our database) as pre-parsed tuples, inserted with one plain
`sqlite3` `executemany` per table in ONE transaction into a fresh database
with the same tables and indexes (DDL compiled from `tastebud.profiles.migrations`:
unique event_id, ix_events_user_ts, ix_events_ts_user, the items primary key)
and the same pragmas as our engine (`tastebud.profiles.store.SQLITE_PRAGMAS`: WAL,
synchronous=NORMAL, the same auto-checkpoint size). No file reading, parsing,
validation, hashing or accounting: the floor for storing these rows, so
ours/raw is what all our work costs on top of it.

Both sides store the same rows (events + items), so the ratio is simply
raw seconds / ours seconds, i.e. ours events/s over raw events/s. Each side
runs --repeat times (default 3), alternating, each into a fresh database; the
best time of each counts, since the machine is shared. Both are timed until
their database is closed, so each pays for folding its WAL into the database
file. Targets: ours under 10 s for the directory, ratio at least 0.5. The cpu column
(process CPU time of the best run) is for reading results on a loaded machine.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy.dialects import sqlite as sqlite_dialect  # noqa: E402
from sqlalchemy.schema import CreateIndex, CreateTable  # noqa: E402

from tastebud.profiles.ingest import Ingestor  # noqa: E402
from tastebud.profiles.migrations import events, items  # noqa: E402
from tastebud.profiles.movielens import ingest_movielens  # noqa: E402
from tastebud.profiles.store import SQLITE_PRAGMAS, EventStore  # noqa: E402
from tastebud.settings import load_settings  # noqa: E402

EVENT_COLUMNS = ("event_id", "user_id", "item_id", "type", "ts", "value", "text")
ITEM_COLUMNS = tuple(c.name for c in items.columns)


def run_ours(directory: Path, workdir: Path, batch_size: int | None = None) -> tuple[tuple[float, float], dict, Path]:
    home = Path(tempfile.mkdtemp(prefix="ours-", dir=workdir))
    settings = load_settings(home=home)
    store = EventStore.from_settings(settings)
    try:
        ingestor = Ingestor(store, batch_size or settings.ingest_batch_size)
        start, cpu = time.perf_counter(), time.process_time()
        reports = ingest_movielens(ingestor, directory)
    finally:
        store.close()  # timed: closing checkpoints the WAL into the database file
    return (time.perf_counter() - start, time.process_time() - cpu), reports, home / "tastebud.db"


def stored_rows(db_path: Path) -> tuple[list[tuple], list[tuple]]:
    """Exactly the rows our ingest stored, in its order: the raw side's input."""
    with sqlite3.connect(db_path) as conn:
        ev = conn.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY seq").fetchall()
        it = conn.execute(f"SELECT {', '.join(ITEM_COLUMNS)} FROM items ORDER BY rowid").fetchall()
    return ev, it


def schema_ddl() -> list[str]:
    dialect = sqlite_dialect.dialect()
    ddl = [str(CreateTable(t).compile(dialect=dialect)) for t in (events, items)]
    ddl += [str(CreateIndex(i).compile(dialect=dialect)) for t in (events, items) for i in t.indexes]
    return ddl


def run_raw(event_rows: list[tuple], item_rows: list[tuple], workdir: Path) -> tuple[float, float]:
    path = Path(tempfile.mkdtemp(prefix="raw-", dir=workdir)) / "raw.db"
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in SQLITE_PRAGMAS:
            conn.execute(pragma)
        for statement in schema_ddl():
            conn.execute(statement)
        insert_items = f"INSERT INTO items ({', '.join(ITEM_COLUMNS)}) VALUES ({', '.join('?' * len(ITEM_COLUMNS))})"
        insert_events = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(EVENT_COLUMNS))})"
        start, cpu = time.perf_counter(), time.process_time()
        conn.execute("BEGIN")
        conn.executemany(insert_items, item_rows)
        conn.executemany(insert_events, event_rows)
        conn.execute("COMMIT")
    finally:
        conn.close()  # timed, as on our side
    seconds = (time.perf_counter() - start, time.process_time() - cpu)
    with sqlite3.connect(path) as check:
        stored = check.execute("SELECT count(*) FROM events").fetchone()[0]
    assert stored == len(event_rows), (stored, len(event_rows))
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("directory", nargs="?", default=str(ROOT / "examples" / "ml-latest-small"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=None, help="rows per transaction (default: settings)")
    args = parser.parse_args(argv)
    directory = Path(args.directory)

    workdir = Path(tempfile.mkdtemp(prefix="tastebud-bench-"))
    try:
        seconds, reports, db_path = run_ours(directory, workdir, args.batch_size)
        ours_times, raw_times = [seconds], []
        event_rows, item_rows = stored_rows(db_path)
        raw_times.append(run_raw(event_rows, item_rows, workdir))
        for _ in range(max(1, args.repeat) - 1):  # alternate, so both sides see the same machine load
            ours_times.append(run_ours(directory, workdir, args.batch_size)[0])
            raw_times.append(run_raw(event_rows, item_rows, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    ev = reports["events"]
    cat = reports["catalog"]
    n_events, n_rows = len(event_rows), len(event_rows) + len(item_rows)
    (ours, ours_cpu), (raw, raw_cpu) = min(ours_times), min(raw_times)
    print(f"data: {directory}   batch size: {args.batch_size or load_settings(home=workdir).ingest_batch_size:,}")
    print(f"ours: read {ev.read:,} events + {cat.read:,} items; accepted {ev.accepted:,} + {cat.accepted:,}, "
          f"duplicates {ev.duplicates + cat.duplicates:,}, rejected {ev.rejected + cat.rejected:,}")
    print(f"{'':6}{'rows':>10}{'seconds':>10}{'events/s':>12}{'cpu s':>8}   all runs (s)")
    for name, best, cpu, runs in (("ours", ours, ours_cpu, ours_times), ("raw", raw, raw_cpu, raw_times)):
        print(f"{name:6}{n_rows:>10,}{best:>10.3f}{n_events / best:>12,.0f}{cpu:>8.3f}   "
              f"{' '.join(f'{t:.3f}' for t, _ in runs)}")
    ratio = raw / ours
    print(f"ratio ours/raw (events/s): {ratio:.2f}  (by cpu time: {raw_cpu / ours_cpu:.2f})   "
          f"targets: ours < 10 s [{'ok' if ours < 10 else 'MISSED'}], ratio >= 0.5 [{'ok' if ratio >= 0.5 else 'MISSED'}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
