"""Ingestion of event and catalog files: readers, accounting, quarantine, stubs, MovieLens layouts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from tastebud.profiles.events import parse_timestamp
from tastebud.profiles.ingest import Ingestor
from tastebud.profiles.movielens import ML100K_GENRES, ingest_movielens
from tastebud.profiles.readers import EVENT_ALIASES, read_csv, read_jsonl
from tastebud.errors import InputError, NotFoundError

T = 964982703


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def counts(report) -> tuple[int, int, int, int]:
    return report.read, report.accepted, report.duplicates, report.rejected


def open_rows(store) -> list[dict]:
    return store.open_quarantine()


# ------------------------------------------------------------------ readers
def test_csv_reader_tracks_line_numbers_across_quoted_newlines_blank_lines_and_crlf():
    data = (
        "\ufeffuserId,movieId,rating,timestamp,tag\r\n"
        '1,10,4,100,"two\r\nlines"\r\n'
        "\r\n"
        "2,20,5,200,plain\r\n"
    ).encode()
    rows = list(read_csv(io.BytesIO(data), EVENT_ALIASES))
    assert [r.line_no for r in rows] == [2, 5]
    assert rows[0].fields == {"user_id": "1", "item_id": "10", "value": "4", "timestamp": "100", "text": "two\r\nlines"}
    assert rows[0].raw.rstrip("\r\n") == '1,10,4,100,"two\r\nlines"'


def test_csv_reader_rejects_bad_records_but_keeps_reading():
    data = b"user,item,ts\n1,a,5\n2,b\n3,\xff\xfe,7\n4,\"x\"y,8\n5,e,9\n"
    rows = list(read_csv(io.BytesIO(data), EVENT_ALIASES))
    assert [(r.line_no, r.error) for r in rows] == [
        (2, None),
        (3, "expected 3 fields, got 2"),
        (4, "not valid utf-8 text"),
        (5, "malformed CSV: ',' expected after '\"'"),
        (6, None),
    ]
    assert rows[2].raw == "3,\ufffd\ufffd,7"


@pytest.mark.parametrize("block_size", [1, 5, 17, 1 << 18])
def test_csv_reader_gives_the_same_records_whatever_the_block_size(block_size):
    data = b'user,item,ts\n1,"a\n\nb",5\n2,\xe9,6\n3,"unterminated\n4,d,7\n'
    expected = [(r.line_no, r.raw.rstrip("\r\n"), r.fields, r.error) for r in read_csv(io.BytesIO(data), EVENT_ALIASES)]
    got = [(r.line_no, r.raw.rstrip("\r\n"), r.fields, r.error)
           for r in read_csv(io.BytesIO(data), EVENT_ALIASES, block_size=block_size)]
    assert got == expected
    assert [r[0] for r in got] == [2, 5, 6]
    assert got[2][3] == "malformed CSV: unexpected end of data"


def test_csv_header_problems_are_input_errors():
    with pytest.raises(InputError, match="not valid utf-8"):
        read_csv(io.BytesIO(b"us\xffer,item\n1,2\n"), EVENT_ALIASES)
    assert list(read_csv(io.BytesIO(b""), EVENT_ALIASES)) == []
    assert list(read_csv(io.BytesIO(b"user,item,ts\n"), EVENT_ALIASES)) == []


def test_jsonl_reader_reasons():
    data = (
        b'{"user": 1, "item": 2, "type": "view", "ts": 5}\n'
        b"\n"
        b"{not json}\n"
        b"[1, 2]\n"
        b'{"user": "\xff"}\n'
        b'{"user": "\\ud800", "item": 1}\n'
        b'{"user": "\\ud83d\\ude00", "item": 1}\n'
    )
    rows = list(read_jsonl(io.BytesIO(data), EVENT_ALIASES))
    assert [(r.line_no, r.error and r.error.split(":")[0]) for r in rows] == [
        (1, None), (3, "bad JSON"), (4, "bad JSON"), (5, "not valid utf-8 text"), (6, "bad JSON"), (7, None)
    ]
    assert rows[0].fields == {"user_id": 1, "item_id": 2, "type": "view", "timestamp": 5}
    assert rows[4].error == "bad JSON: lone surrogate escape"
    assert rows[5].fields["user_id"] == "\U0001f600"


# ------------------------------------------------------------------ events
def test_csv_events_accounting_and_read_back(store, tmp_path):
    path = write(tmp_path / "events.csv", (
        "user_id,item_id,type,timestamp,value,text\n"
        f"u1,i1,rating,{T},4.5,\n"
        f"u1,i2,view,{T + 1},,\n"
        f"u1,i1,rating,{T},4.5,\n"  # the same event again
        "u2,i3,teleport,5,,\n"
        "u2,i3,view,soon,,\n"
        ",i3,view,5,,\n"
        "u2,i3,rating,5,great,\n"
    ))
    report = Ingestor(store, batch_size=2).ingest_events(str(path))
    assert counts(report) == (7, 2, 1, 4)
    assert dict(report.reasons) == {"unknown event type": 1, "unparsable timestamp": 1, "missing user_id": 1,
                                    "non-numeric rating": 1}
    evs = store.events_for_user("u1")
    assert [(e.item_id, e.type, e.ts, e.value) for e in evs] == [("i1", "rating", T * 1000, 4.5), ("i2", "view", (T + 1) * 1000, None)]
    assert [(r["line_no"], r["reason"]) for r in open_rows(store)] == [
        (5, "unknown event type 'teleport'"), (6, "unparsable timestamp 'soon'"), (7, "missing user_id"),
        (8, "non-numeric rating 'great'"),
    ]
    assert store.status()["quarantined"] == 4


def test_reingesting_a_file_adds_nothing_and_quarantines_nothing_twice(store, tmp_path):
    path = write(tmp_path / "e.jsonl", (
        json.dumps({"user_id": "u", "item_id": "a", "type": "like", "timestamp": "2024-01-01T00:00:00Z"}) + "\n"
        + "{broken\n"
        + json.dumps({"user_id": "u", "type": "search", "timestamp": 1, "text": "jazz"}) + "\n"
    ))
    first = Ingestor(store).ingest_events(str(path))
    second = Ingestor(store).ingest_events(str(path))
    assert counts(first) == (3, 2, 0, 1)
    assert counts(second) == (3, 0, 2, 1)
    assert len(open_rows(store)) == 1
    assert store.status()["events"] == 2


def test_event_for_an_unknown_item_creates_a_stub_that_the_catalog_later_fills(store, tmp_path):
    Ingestor(store).ingest_events(str(write(tmp_path / "e.csv", f"user,item,type,ts\nu,new-item,click,{T}\n")))
    stub = store.get_item("new-item")
    assert stub.is_stub and stub.title is None
    assert store.status()["stub_items"] == 1
    report = Ingestor(store).ingest_catalog(str(write(tmp_path / "c.csv", "id,title,genres\nnew-item,Heat,Action|Crime\n")))
    assert counts(report) == (1, 1, 0, 0)
    item = store.get_item("new-item")
    assert not item.is_stub and item.title == "Heat" and item.categories == ("Action", "Crime")


def test_catalog_reingest_counts_unchanged_items_as_duplicates(store, tmp_path):
    path = write(tmp_path / "c.jsonl", "\n".join(json.dumps(r) for r in [
        {"item_id": "a", "title": "A", "tags": ["x"], "attributes": {"year": 1999}},
        {"item_id": "b", "title": "B"},
        {"item_id": "a", "title": "A2"},  # a later row of the same file wins
        {"title": "no id"},
    ]) + "\n")
    assert counts(Ingestor(store).ingest_catalog(str(path))) == (4, 2, 1, 1)
    assert store.get_item("a").title == "A2"
    assert counts(Ingestor(store).ingest_catalog(str(path))) == (4, 0, 3, 1)


def test_nothing_to_read_and_missing_inputs(store, tmp_path):
    ing = Ingestor(store)
    assert counts(ing.ingest_events(str(write(tmp_path / "empty.csv", "")))) == (0, 0, 0, 0)
    with pytest.raises(InputError, match="no such file"):
        ing.ingest_events(str(tmp_path / "missing.csv"))
    with pytest.raises(InputError, match="cannot guess the format"):
        ing.ingest_events(str(write(tmp_path / "e.txt", "x")))


# ------------------------------------------------------------------ quarantine retry
def test_fix_and_retry_ingests_the_corrected_row_and_a_rerun_does_not_reopen_it(store, tmp_path):
    path = write(tmp_path / "e.csv", f"user,item,type,ts,value\nu,i,rating,{T},4\nu,j,rating,{T},four\n")
    Ingestor(store).ingest_events(str(path))
    [row] = open_rows(store)

    unchanged = Ingestor(store).retry_quarantine()
    assert counts(unchanged) == (1, 0, 0, 1)
    assert [r["reason"] for r in open_rows(store)] == ["non-numeric rating 'four'"]

    store.fix_quarantine(row["id"], f"u,j,rating,{T},4.0")
    fixed = Ingestor(store).retry_quarantine()
    assert counts(fixed) == (1, 1, 0, 0)
    assert open_rows(store) == []
    assert [(e.item_id, e.value) for e in store.events_for_user("u")] == [("i", 4.0), ("j", 4.0)]

    again = Ingestor(store).ingest_events(str(path))  # the file still has its bad line
    assert counts(again) == (2, 0, 1, 1)
    assert open_rows(store) == []  # already fixed and ingested: not reopened
    with pytest.raises(NotFoundError):
        store.fix_quarantine(row["id"], "anything")  # resolved rows are closed


def test_retry_of_a_row_that_could_not_be_split_uses_the_stored_header(store, tmp_path):
    path = write(tmp_path / "e.csv", f'user,item,type,ts\nu,i,view\nu,i,view,"{T}\n')
    report = Ingestor(store).ingest_events(str(path))
    assert dict(report.reasons) == {"expected 4 fields, got 3": 1, "malformed CSV": 1}
    first, second = open_rows(store)
    store.fix_quarantine(first["id"], f"u,i,view,{T}")
    store.fix_quarantine(second["id"], f"u,k,view,{T}")
    assert counts(Ingestor(store).retry_quarantine([first["id"]])) == (1, 1, 0, 0)
    assert counts(Ingestor(store).retry_quarantine()) == (1, 1, 0, 0)
    assert {e.item_id for e in store.events_for_user("u")} == {"i", "k"}


def test_retry_of_jsonl_and_catalog_rows(store, tmp_path):
    Ingestor(store).ingest_events(str(write(tmp_path / "e.jsonl", '{"user": "u", "item": "i", "type": "view", "ts": 1\n')))
    Ingestor(store).ingest_catalog(str(write(tmp_path / "c.csv", "id,title,attributes\nm,Heat,{bad\n")))
    ev_row, cat_row = open_rows(store)
    store.fix_quarantine(ev_row["id"], '{"user": "u", "item": "i", "type": "view", "ts": 1}')
    store.fix_quarantine(cat_row["id"], 'm,Heat,"{""year"": 1995}"')
    assert counts(Ingestor(store).retry_quarantine()) == (2, 2, 0, 0)
    assert store.get_item("m").attributes == {"year": 1995}
    assert [e.item_id for e in store.events_for_user("u")] == ["i"]


def test_encoding_failures_stay_rejected_until_fixed(store, tmp_path):
    Ingestor(store).ingest_events(str(write(tmp_path / "e.csv", f"user,item,type,ts\nu,caf\xe9,view,{T}\n".encode("latin-1"))))
    [row] = open_rows(store)
    assert row["reason"] == "not valid utf-8 text" and "\ufffd" in row["raw"]
    assert counts(Ingestor(store).retry_quarantine()) == (1, 0, 0, 1)
    store.fix_quarantine(row["id"], f"u,café,view,{T}")
    assert counts(Ingestor(store).retry_quarantine()) == (1, 1, 0, 0)
    assert store.events_for_user("u")[0].item_id == "café"


# ------------------------------------------------------------------ MovieLens
def test_movielens_latest_rows_keep_their_event_type_through_quarantine_retry(store, tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    write(d / "movies.csv", 'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n2,"Odd, Film",(no genres listed)\n')
    write(d / "ratings.csv", f"userId,movieId,rating,timestamp\n1,1,4.0,{T}\n1,2,oops,{T}\n")
    write(d / "tags.csv", f"userId,movieId,tag,timestamp\n1,1,pixar,{T}\n2,1,Pixar,{T}\n")
    reports = ingest_movielens(Ingestor(store), d)
    assert counts(reports["catalog"]) == (2, 2, 0, 0)
    assert counts(reports["events"]) == (4, 3, 0, 1)
    assert store.get_item("2").categories == () and store.get_item("2").title == "Odd, Film"
    assert store.get_item("1").tags == ("pixar",)
    [row] = open_rows(store)
    store.fix_quarantine(row["id"], f"1,2,3.5,{T}")
    assert counts(Ingestor(store).retry_quarantine()) == (1, 1, 0, 0)
    assert [(e.item_id, e.type, e.value) for e in store.events_for_user("1")] == [
        ("1", "rating", 4.0), ("1", "tag", None), ("2", "rating", 3.5)
    ]


def test_movielens_100k_layout(store, tmp_path):
    d = tmp_path / "ml-100k"
    d.mkdir()
    write(d / "u.genre", "".join(f"{g}|{i}\n" for i, g in enumerate(ML100K_GENRES)) + "\n")

    def flags(*names):
        return "|".join("1" if g in names else "0" for g in ML100K_GENRES)

    write(d / "u.item", (
        f"1|Toy Story (1995)|01-Jan-1995||http://example.org/toy|{flags('Animation', 'Comedy')}\n"
        f"2|Café (1996)|01-Jan-1996||http://example.org/cafe|{flags('Drama', 'unknown')}\n"
        f"3|Broken line|01-Jan-1996\n"
    ).encode("latin-1"))
    write(d / "u.data", f"196\t1\t3\t{T}\n196\t2\t5\t{T + 60}\n22\t2\t1\t{T}\n22\t9\t2\n")
    reports = ingest_movielens(Ingestor(store), d)
    assert counts(reports["catalog"]) == (3, 2, 0, 1)
    assert counts(reports["events"]) == (4, 3, 0, 1)
    cafe = store.get_item("2")
    assert cafe.title == "Café (1996)"  # decoded from Latin-1
    assert cafe.categories == ("Drama",)  # 'unknown' is not a category
    assert cafe.attributes == {"release_date": "01-Jan-1996", "url": "http://example.org/cafe"}
    assert store.get_item("1").categories == ("Animation", "Comedy")
    assert [(e.item_id, e.type, e.value, e.ts) for e in store.events_for_user("196")] == [
        ("1", "rating", 3.0, T * 1000), ("2", "rating", 5.0, (T + 60) * 1000)
    ]
    quarantined = {r["line_no"]: r for r in open_rows(store)}
    assert quarantined[3]["reason"].startswith("expected 24 fields")
    assert quarantined[4]["reason"] == "expected 4 fields, got 3"
    store.fix_quarantine(quarantined[4]["id"], f"22\t9\t2\t{T}")  # tab-separated, like the file
    assert counts(Ingestor(store).retry_quarantine([quarantined[4]["id"]])) == (1, 1, 0, 0)
    assert store.get_item("9").is_stub
    assert store.events_for_user("22")[-1].ts == parse_timestamp(T)


def test_movielens_readers_use_their_release_scale(store, settings, tmp_path):
    """ml-100k rates 1-5 in whole stars: a 0.5 there is a broken row, though the
    default scale (ml-latest's) allows it; the detected scale is saved for the home."""
    from tastebud.profiles.movielens import adopt_rating_scale

    d = tmp_path / "ml-100k"
    d.mkdir()
    write(d / "u.item", "1|Toy Story (1995)|01-Jan-1995||x|" + "|".join("0" * 19) + "\n")
    write(d / "u.data", f"196\t1\t0.5\t{T}\n196\t1\t4\t{T + 1}\n")
    report = ingest_movielens(Ingestor(store), d)["events"]
    assert counts(report) == (2, 1, 0, 1)
    assert open_rows(store)[0]["reason"] == "rating '0.5' outside the scale 1-5"
    assert adopt_rating_scale(settings, d) == (1.0, 5.0)
    assert "rating_min = 1.0" in settings.config_path.read_text()
    from tastebud.settings import load_settings

    assert (load_settings().rating_min, load_settings().sources["rating_min"].split()[0]) == (1.0, "toml")
    assert adopt_rating_scale(load_settings(), d) is None  # already chosen: never overwritten


def test_not_a_movielens_directory(store, tmp_path):
    with pytest.raises(InputError, match="not a MovieLens directory"):
        ingest_movielens(Ingestor(store), tmp_path)
    with pytest.raises(InputError, match="no such directory"):
        ingest_movielens(Ingestor(store), tmp_path / "nope")


def test_nul_characters_are_rejected_so_every_backend_accepts_the_same_rows(store, tmp_path):
    """PostgreSQL text cannot hold a NUL; the quarantined raw text shows it as U+FFFD."""
    csv_path = write(tmp_path / "e.csv", f"user,item,type,ts,text\nu,i,review,{T},ok\x00no\nu,j,view,{T},\n")
    report = Ingestor(store).ingest_events(str(csv_path))
    assert (report.accepted, dict(report.reasons)) == (1, {"contains a NUL character": 1})
    jsonl = write(tmp_path / "e.jsonl", (
        '{"user": "u", "item": "k", "type": "review", "ts": 1, "text": "a\\u0000b"}\n'
        '{"user": "u", "item": "k", "type": "view", "ts": 1}\x00\n'
        '{"user": "u", "item": "k", "type": "review", "ts": 1, "text": "a\\\\u0000b"}\n'  # an escaped backslash: fine
    ))
    report = Ingestor(store).ingest_events(str(jsonl))
    assert (report.accepted, report.rejected) == (1, 2)
    rows = open_rows(store)
    assert [(r["line_no"], r["reason"]) for r in rows] == [(2, "contains a NUL character"), (1, "contains a NUL character"),
                                                            (2, "contains a NUL character")]
    assert rows[0]["raw"] == f"u,i,review,{T},ok\ufffdno" and rows[2]["raw"].endswith("}\ufffd")
    assert counts(Ingestor(store).retry_quarantine()) == (3, 0, 0, 3)
    with pytest.raises(InputError, match="NUL"):
        store.fix_quarantine(rows[0]["id"], "u,i,review,1,ok\x00no")
    store.fix_quarantine(rows[0]["id"], f"u,i,review,{T},ok no")
    assert counts(Ingestor(store).retry_quarantine([rows[0]["id"]])) == (1, 1, 0, 0)


def test_tsv_files_are_tab_separated(store, tmp_path):
    path = write(tmp_path / "events.tsv", f"user\titem\ttype\tts\nu\ta,b\tclick\t{T}\nu\tc\tclick\n")
    report = Ingestor(store).ingest_events(str(path))
    assert counts(report) == (2, 1, 0, 1)
    assert store.events_for_user("u")[0].item_id == "a,b"
    [row] = open_rows(store)
    store.fix_quarantine(row["id"], f"u\tc\tclick\t{T}")
    assert counts(Ingestor(store).retry_quarantine()) == (1, 1, 0, 0)
