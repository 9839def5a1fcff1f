"""Time per event of a profile update: incremental state vs full recomputation.

    .venv/bin/python bench/incremental.py [DIR] [--user 414] [--events 100]

DIR (default examples/ml-latest-small) is ingested into a temp home (not timed).
For the user (default 414: 2,698 ratings, the longest history), the last
--events of their history are replayed one at a time on top of the rest:

- full: what the live updater did before: read the user's events from the store,
  `build_interest_profile`, `computed()` and its content hash;
- incremental: `IncrementalProfiles.profile` (read the events stored since the
  state's last seq, add them, read the profile), `computed()` and its hash.

Both must give the same computed_hash at every step (checked). Median and p95
per event are printed; the machine is shared, so compare within a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import delete, select  # noqa: E402

from tastebud.profiles.incremental import IncrementalProfiles  # noqa: E402
from tastebud.profiles.ingest import Ingestor  # noqa: E402
from tastebud.profiles.interest import InterestConfig  # noqa: E402
from tastebud.profiles.migrations import events  # noqa: E402
from tastebud.profiles.movielens import ingest_movielens  # noqa: E402
from tastebud.profiles.refresh import Refresher  # noqa: E402
from tastebud.profiles.store import EventStore, _row_event  # noqa: E402
from tastebud.profiles.versions import profile_content_hash  # noqa: E402
from tastebud.settings import load_settings  # noqa: E402


def ms(values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return f"median {statistics.median(ordered) * 1e3:7.2f} ms, p95 {p95 * 1e3:7.2f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", nargs="?", default=str(ROOT / "examples" / "ml-latest-small"))
    parser.add_argument("--user", default="414")
    parser.add_argument("--events", type=int, default=100)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-incremental-")) / "home"
    settings = load_settings(home=home)
    store = EventStore.from_settings(settings)
    try:
        ingest_movielens(Ingestor(store, settings.ingest_batch_size), args.directory)
        config = InterestConfig.from_settings(settings)
        items = store.items_by_id()
        with store.engine.begin() as conn:  # take the user's last events out, to put them back one by one
            rows = conn.execute(select(events).where(events.c.user_id == args.user).order_by(events.c.seq)).all()
            replay = [_row_event(r) for r in rows[-args.events:]]
            conn.execute(delete(events).where(events.c.event_id.in_([e.event_id for e in replay])))
        full, incremental = Refresher(store, config), IncrementalProfiles()
        incremental.profile(store, args.user, items, config)  # first touch: built from the history (not timed)
        full_times, incremental_times = [], []
        for ev in replay:
            store.write_batch([ev])
            t0 = time.perf_counter()
            reference, _ = full.compute(args.user, items)
            t1 = time.perf_counter()
            profile, _ = incremental.profile(store, args.user, items, config)
            data = profile.computed()
            data["computed_hash"] = profile_content_hash(data)
            t2 = time.perf_counter()
            assert data["computed_hash"] == reference["computed_hash"], ev.event_id
            full_times.append(t1 - t0)
            incremental_times.append(t2 - t1)
        print(f"user {args.user}: {len(rows)} events, the last {len(replay)} replayed one at a time "
              f"(same computed_hash at every step)")
        print(f"  full recomputation  {ms(full_times)}")
        print(f"  incremental         {ms(incremental_times)}")
        print(f"  speed-up (medians)  {statistics.median(full_times) / statistics.median(incremental_times):.1f}x; "
              f"states {incremental.counts}")
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
