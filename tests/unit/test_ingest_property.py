"""Property: whatever mix of good and broken rows a file holds, every row is
counted exactly once, every reject is quarantined at its line with its reason,
and every accepted row reads back from the store unchanged."""

from __future__ import annotations

import csv
import io
import json
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tastebud.profiles.events import EVENT_TYPES, Event, stable_event_id
from tastebud.profiles.ingest import Ingestor
from tastebud.profiles.store import EventStore

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
COLUMNS = ["user_id", "item_id", "type", "timestamp", "value", "text", "event_id"]
TEXT_TYPES = {"review", "search", "tag"}


@dataclass
class Good:
    user_id: str
    item_id: str | None
    type: str
    ts_ms: int
    ts_raw: object  # as written in the file
    value: float | None
    text: str | None
    event_id: str | None

    def expected(self) -> Event:
        text = self.text.strip() if self.text else None
        eid = self.event_id or stable_event_id(self.user_id, self.item_id, self.type, self.ts_ms, self.value, text)
        return Event(eid, self.user_id, self.item_id, self.type, self.ts_ms, self.value, text)


@dataclass
class Bad:
    kind: str  # how it is broken; see BREAKS
    base: Good


@dataclass
class Dup:
    index: int  # repeat the n-th earlier good row verbatim


ids = st.sampled_from(["u1", "u2", "ü3", "user-4"])
items = st.sampled_from(["i1", "i2", "item,3", 'item"4', "é5"])
texts = st.text(alphabet=st.sampled_from(list("ab ,\"'\n\r\té€😀|;") + ["\u2028", "\x85"]), min_size=1, max_size=12) \
    .filter(lambda t: t.strip())
values = st.sampled_from([0.5, 1.0, 3.5, 4.0, 5.0, 2.25, 0.75, 4.999])  # the default scale: 0.5-5
NOW_MS = int(time.time() * 1000)


@st.composite
def timestamps(draw):
    ms = draw(st.integers(min_value=0, max_value=NOW_MS))  # the value rules: 1970 to now (+ skew)
    form = draw(st.sampled_from(["s", "ms", "iso_z", "iso_offset", "iso_naive", "frac"]))
    if form == "s":
        ms -= ms % 1000
        return ms, str(ms // 1000)
    if form == "ms":
        ms = max(ms, 100_000_000_000)  # below this, digits mean seconds
        return ms, str(ms)
    if form == "frac":
        return ms, f"{ms // 1000}.{ms % 1000:03d}"
    dt = EPOCH + timedelta(milliseconds=ms)
    if form == "iso_z":
        return ms, dt.isoformat().replace("+00:00", "Z")
    if form == "iso_offset":
        return ms, dt.astimezone(timezone(timedelta(hours=-5))).isoformat()
    return ms, dt.replace(tzinfo=None).isoformat()


@st.composite
def goods(draw):
    type_ = draw(st.sampled_from(sorted(EVENT_TYPES)))
    ts = draw(timestamps())
    return Good(
        user_id=draw(ids),
        item_id=draw(st.none() | items) if type_ == "search" else draw(items),
        type=type_,
        ts_ms=ts[0],
        ts_raw=ts[1],
        value=draw(values) if type_ == "rating" else draw(st.none() | values),
        text=draw(texts) if type_ in TEXT_TYPES else draw(st.none() | texts),
        event_id=draw(st.none() | st.none() | st.sampled_from(["e1", "e2", "e3"])),
    )


BREAKS = {
    # kind: (formats it applies to, reason prefix)
    "fields": ({"csv"}, "expected 7 fields"),
    "encoding": ({"csv", "jsonl"}, "not valid utf-8 text"),
    "json": ({"jsonl"}, "bad JSON"),
    "not_object": ({"jsonl"}, "bad JSON: expected an object"),
    "surrogate": ({"jsonl"}, "bad JSON: lone surrogate"),
    "user": ({"csv", "jsonl"}, "missing user_id"),
    "type": ({"csv", "jsonl"}, "unknown event type"),
    "timestamp": ({"csv", "jsonl"}, "unparsable timestamp"),
    "rating": ({"csv", "jsonl"}, "non-numeric rating"),
    "scale": ({"csv", "jsonl"}, "rating '99' outside the scale"),
    "future": ({"csv", "jsonl"}, "timestamp in the future"),
    "before_1970": ({"csv", "jsonl"}, "timestamp before 1970"),
    "nul": ({"csv", "jsonl"}, "contains a NUL character"),
    "nul_escape": ({"jsonl"}, "contains a NUL character"),
}


def elements(fmt: str):
    kinds = sorted(k for k, (fmts, _) in BREAKS.items() if fmt in fmts)
    bad = st.builds(Bad, st.sampled_from(kinds), goods())
    return st.one_of(goods(), goods(), bad, st.builds(Dup, st.integers(0, 50)), st.just("blank"))


def csv_cells(g: Good) -> list[str]:
    return [g.user_id, g.item_id or "", g.type, str(g.ts_raw), "" if g.value is None else repr(g.value),
            g.text or "", g.event_id or ""]


def csv_record(cells: list[str], crlf: bool) -> bytes:
    buf = io.StringIO()
    if crlf:
        csv.writer(buf).writerow(cells)
    else:  # with a bare \n terminator the writer would leave a \r unquoted: quote everything
        csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL).writerow(cells)
    return buf.getvalue().encode("utf-8")


def json_record(g: Good, **over) -> bytes:
    obj = {"user_id": g.user_id, "item_id": g.item_id, "type": g.type, "timestamp": g.ts_raw,
           "value": g.value, "text": g.text, "event_id": g.event_id}
    obj.update(over)
    return (json.dumps(obj) + "\n").encode("utf-8")


def render(fmt: str, g: Good, kind: str | None = None, crlf: bool = False) -> bytes:
    """One record's bytes, good or broken in the given way."""
    if fmt == "csv":
        cells = csv_cells(g)
        if kind == "fields":
            return csv_record(cells[:-1], crlf)
        if kind == "encoding":
            return b"\xff" + csv_record(cells, crlf)
        if kind == "user":
            cells[0] = " "
        elif kind == "type":
            cells[2] = "teleport"
        elif kind == "timestamp":
            cells[3] = "not-a-time"
        elif kind == "rating":
            cells[1], cells[2], cells[4] = cells[1] or "i1", "rating", "abc"  # a search may have no item
        elif kind == "scale":
            cells[1], cells[2], cells[4] = cells[1] or "i1", "rating", "99"
        elif kind == "future":
            cells[3] = "9999-12-31T23:59:59-12:00"
        elif kind == "before_1970":
            cells[3] = "1900-01-01T00:00:00Z"
        elif kind == "nul":
            cells[0] += "\x00"
        return csv_record(cells, crlf)
    if kind == "encoding":
        return b'{"user_id": "\xff"}\n'
    if kind == "json":
        return json_record(g)[:-3] + b"\n"
    if kind == "not_object":
        return b"[1, 2, 3]\n"
    if kind == "nul":
        return json_record(g)[:-1] + b"\x00\n"
    if kind == "nul_escape":
        return json_record(g, text="a\x00b")  # json.dumps writes it as \u0000
    if kind == "surrogate":
        return b'{"user_id": "\\ud800x", "item_id": "i", "type": "view", "timestamp": 1}\n'
    over = {"user": {"user_id": None}, "type": {"type": "teleport"}, "timestamp": {"timestamp": "not-a-time"},
            "rating": {"type": "rating", "value": "abc", "item_id": g.item_id or "i1"},
            "scale": {"type": "rating", "value": "99", "item_id": g.item_id or "i1"},
            "future": {"timestamp": "9999-12-31T23:59:59-12:00"},
            "before_1970": {"timestamp": "1900-01-01T00:00:00Z"}}.get(kind, {})
    return json_record(g, **over)


def build(fmt: str, elems: list, bom: bool, crlf: bool = False):
    """The file's bytes plus what ingesting it must produce."""
    chunks = [("\ufeff" if bom else "").encode() + (b",".join(c.encode() for c in COLUMNS) + b"\n" if fmt == "csv" else b"")]
    line = 2 if fmt == "csv" else 1
    good_rows: list[tuple[bytes, Good]] = []
    accepted: dict[str, Event] = {}
    duplicates = 0
    rejected: list[tuple[int, str, str]] = []  # line, reason prefix, raw
    for elem in elems:
        if elem == "blank":
            data = b"\n"
        elif isinstance(elem, Dup) and good_rows:
            data, g = good_rows[elem.index % len(good_rows)]
            duplicates += 1
        elif isinstance(elem, Bad):
            data = render(fmt, elem.base, elem.kind, crlf)
            raw = data.decode("utf-8", "replace").replace("\x00", "\ufffd").rstrip("\r\n")
            rejected.append((line, BREAKS[elem.kind][1], raw))
        else:
            g = elem if isinstance(elem, Good) else None
            if g is None:
                continue  # a Dup with nothing to repeat yet
            data = render(fmt, g, crlf=crlf)
            good_rows.append((data, g))
            ev = g.expected()
            if ev.event_id in accepted:
                duplicates += 1  # an explicit id seen before: the first row keeps it
            else:
                accepted[ev.event_id] = ev
        chunks.append(data)
        line += data.count(b"\n")
    return b"".join(chunks), accepted, duplicates, rejected


def check(fmt: str, elems: list, bom: bool, batch_size: int, twice: bool, crlf: bool = False) -> None:
    data, accepted, duplicates, rejected = build(fmt, elems, bom, crlf)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"events.{fmt}"
        path.write_bytes(data)
        store = EventStore(f"sqlite:///{tmp}/t.db")
        try:
            report = Ingestor(store, batch_size=batch_size).ingest_events(str(path))
            assert report.read == report.accepted + report.duplicates + report.rejected
            assert (report.accepted, report.duplicates, report.rejected) == (len(accepted), duplicates, len(rejected))

            quarantined = sorted((r["line_no"], r["reason"], r["raw"]) for r in store.open_quarantine())
            assert len(quarantined) == len(rejected)
            for (line, prefix, raw), (q_line, q_reason, q_raw) in zip(sorted(rejected), quarantined):
                assert (q_line, q_raw) == (line, raw)
                assert q_reason.startswith(prefix), (q_reason, prefix)

            for user in {ev.user_id for ev in accepted.values()}:
                stored = sorted(store.events_for_user(user), key=lambda e: e.event_id)
                expected = sorted((ev for ev in accepted.values() if ev.user_id == user), key=lambda e: e.event_id)
                assert stored == expected
            assert store.status()["events"] == len(accepted)

            if twice:
                again = Ingestor(store, batch_size=batch_size).ingest_events(str(path))
                assert (again.read, again.accepted, again.duplicates, again.rejected) == \
                    (report.read, 0, report.accepted + report.duplicates, report.rejected)
                assert len(store.open_quarantine()) == len(rejected)
        finally:
            store.close()


PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(elems=st.lists(elements("csv"), max_size=25), bom=st.booleans(),
       batch_size=st.sampled_from([1, 3, 7, 5000]), twice=st.booleans(), crlf=st.booleans())
def test_csv_rows_are_accounted_quarantined_and_read_back(elems, bom, batch_size, twice, crlf):
    check("csv", elems, bom, batch_size, twice, crlf)


@PROPERTY
@given(elems=st.lists(elements("jsonl"), max_size=25), bom=st.booleans(),
       batch_size=st.sampled_from([1, 3, 7, 5000]), twice=st.booleans())
def test_jsonl_rows_are_accounted_quarantined_and_read_back(elems, bom, batch_size, twice):
    check("jsonl", elems, bom, batch_size, twice)
