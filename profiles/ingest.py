"""Ingestion of event and catalog files (CSV, JSONL, MovieLens) with quarantine.

Every row read is counted exactly once as accepted, duplicate or rejected.
Rejected rows go to the quarantine table with source, line number, raw text and
reason, in the same transaction as their batch's good rows, so an interrupted
ingest can simply be rerun.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator, Mapping, NamedTuple, Sequence

from tastebud.profiles.events import (DEFAULT_RULES, EVENT_FIELDS, Item, RowError, ValueRules, event_fields, event_values,
                             parse_item, unstorable)
from tastebud.profiles.store import EventStore, QuarantinedRow
from tastebud.errors import InputError

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)

EVENT_ALIASES = {
    "user_id": ("user_id", "user", "userid", "uid"),
    "item_id": ("item_id", "item", "itemid", "movieid", "product_id", "iid"),
    "type": ("type", "event_type", "event", "action"),
    "timestamp": ("timestamp", "ts", "time", "event_time", "datetime"),
    "value": ("value", "rating", "score"),
    "text": ("text", "review", "query", "tag", "comment"),
    "event_id": ("event_id", "id"),
}
ITEM_ALIASES = {
    "item_id": ("item_id", "item", "itemid", "movieid", "id", "product_id"),
    "title": ("title", "name"),
    "description": ("description", "desc", "summary", "overview"),
    "categories": ("categories", "category", "genres", "genre"),
    "tags": ("tags",),
    "attributes": ("attributes", "attrs"),
    "updated_at": ("updated_at", "updated", "timestamp"),
}


@dataclass
class IngestReport:
    source: str
    kind: str
    read: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)

    def add(self, other: "IngestReport") -> None:
        self.read += other.read
        self.accepted += other.accepted
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.reasons.update(other.reasons)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "kind": self.kind,
            "read": self.read,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "reasons": dict(self.reasons.most_common()),
        }


class RawRow(NamedTuple):
    """One record as read: a tuple, because ingestion makes 100k+ of them."""

    line_no: int  # where the record starts
    raw: str  # its text; a good CSV record keeps its line end (stripped only if quarantined)
    fields: Mapping[str, Any] | None  # None when the row could not even be split
    error: str | None = None


# ---------------------------------------------------------------- readers
_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_BLINE = re.compile(rb"[^\n]*\n|[^\n]+")
BLOCK_SIZE = 1 << 18
_END = object()
NUL_REASON = "contains a NUL character"  # PostgreSQL text cannot hold one; SQLite could, but both must agree
_new_row = tuple.__new__  # RawRow without the Python-level __new__: this runs per record
_ITEM_OF = itemgetter(2)  # item_id of an event tuple


def _canonical_header(header: Sequence[str], aliases: Mapping[str, Sequence[str]]) -> list[str]:
    lookup = {alias: canon for canon, names in aliases.items() for alias in names}
    return [lookup.get(h.strip().lower().replace(" ", "_"), h.strip()) for h in header]


class read_csv:
    """Iterates the records of a CSV stream as RawRows (line number, raw text, fields).

    The stream is read in blocks cut at line ends; each block is decoded at
    once and split into lines that `csv.reader` consumes as a plain list, so
    no Python code runs per input line, and `reader.line_num` says which lines made
    each record (its raw text; a quoted field may span lines, and a record cut
    by a block end is carried into the next block). A block that does not
    decode is decoded line by line so only its bad lines are rejected.

    A class rather than a generator so the ingestor can read `names` (the
    canonical header) and `delimiter` to store with quarantined rows: that is
    what makes a row that could not even be split retryable after a fix.
    """

    def __init__(self, stream: IO[bytes], aliases: Mapping[str, Sequence[str]], *, encoding: str = "utf-8",
                 delimiter: str = ",", header: Sequence[str] | None = None,
                 progress: Callable[[int], None] | None = None, block_size: int = BLOCK_SIZE):
        self.stream = stream
        self.encoding = encoding
        self.delimiter = delimiter
        self.progress = progress
        self.block_size = block_size
        self.bytes_done = 0
        self.aliases = aliases
        self.names: list[str] | None = _canonical_header(header, aliases) if header is not None else None
        self._records = self._read()
        if self.names is None and next(self._records, _END) is _END:
            self._records = iter(())  # an empty stream: no header, no rows

    def __iter__(self) -> Iterator[RawRow]:
        names = self.names
        for line_no, raw, row, error in self._records:
            yield _new_row(RawRow, (line_no, raw, None if row is None else dict(zip(names, row)), error))

    def records(self) -> Iterator[tuple[int, str, list[str] | None, str | None]]:
        """Like iterating, but a good record's fields stay a list in header order
        (for `picker`): the ingestion hot path skips a dict per row."""
        return self._records

    def picker(self, fields: Sequence[str], constants: Mapping[str, Any] | None = None) -> Callable[[list[str]], tuple]:
        """A function from a record's list to the values of `fields` (None when
        absent, `constants` overriding columns): the list twin of `dict.get`."""
        index = {name: i for i, name in enumerate(self.names or ())}  # a repeated column: the last wins, as in a dict
        extras: list[Any] = []
        positions = []
        for name in fields:
            if constants and name in constants:
                extras.append(constants[name])
                positions.append(len(index) + len(extras) - 1)
            elif name in index:
                positions.append(index[name])
            else:
                extras.append(None)
                positions.append(len(index) + len(extras) - 1)
        getter = itemgetter(*positions)
        if not extras:
            return getter
        return lambda row: getter(row + extras)  # records() gives only rows of the header's width

    def _blocks(self) -> Iterator[tuple[list[str], dict[int, str], bool]]:
        """(lines with their line ends, unusable lines by index with the reason, is last block)."""
        read, size, progress = self.stream.read, self.block_size, self.progress
        partial: list[bytes] = []  # bytes after the last line end read so far
        first = True
        pending = None
        while True:
            chunk = read(size)
            if chunk:
                cut = chunk.rfind(b"\n") + 1
                if cut == 0:
                    partial.append(chunk)  # no line end yet: keep reading (joined once, not per read)
                    continue
                data = b"".join(partial) + chunk[:cut] if partial else chunk[:cut]
                partial = [chunk[cut:]] if cut < len(chunk) else []
            else:
                data, partial = b"".join(partial), []  # the last line may lack its line end
            if data:
                self.bytes_done += len(data)
                lines, bad = self._decode(data, first)
                first = False
                if pending is not None:
                    yield (*pending, False)
                pending = (lines, bad)
                if progress is not None:
                    progress(self.bytes_done)
            if not chunk:
                break
        if pending is not None:
            yield (*pending, True)

    def _decode(self, data: bytes, first: bool) -> tuple[list[str], dict[int, str]]:
        """A block's lines, and why some of them are unusable (by index)."""
        encoding = self.encoding
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            lines, bad = [], {}
            for i, raw in enumerate(_BLINE.findall(data)):
                try:
                    lines.append(raw.decode(encoding))
                except UnicodeDecodeError:
                    lines.append(raw.decode(encoding, errors="replace"))
                    bad[i] = f"not valid {encoding} text"
            if first and lines and lines[0].startswith("\ufeff"):
                lines[0] = lines[0][1:]
        else:
            if first and text.startswith("\ufeff"):
                text = text[1:]
            lines, bad = _LINE.findall(text), {}
            if "\x00" not in text:  # one C-speed scan per block
                return lines, bad
        for i, line in enumerate(lines):
            if "\x00" in line:
                lines[i] = line.replace("\x00", "\ufffd")  # storable in quarantine on every backend
                bad.setdefault(i, NUL_REASON)
        return lines, bad

    def _read(self) -> Iterator[tuple[int, str, list[str] | None, str | None] | None]:
        """(line number, raw text, fields list or None, error or None) per record;
        without a given header, first reads it and yields None once."""
        names = self.names
        width = len(names) if names is not None else 0
        base = 0  # lines before the current block
        carry: list[str] = []  # lines of a record the previous block cut off
        carry_bad: dict[int, str] = {}
        delimiter = self.delimiter
        for lines, bad, last in self._blocks():
            if carry:
                bad = {**carry_bad, **{i + len(carry): reason for i, reason in bad.items()}}
                lines = carry + lines
                carry, carry_bad = [], {}
            reader = csv.reader(lines, delimiter=delimiter, strict=True)
            prev = 0
            while True:
                try:
                    for row in reader:
                        end = reader.line_num
                        if bad and any(prev <= i < end for i in bad):
                            reason = next(bad[i] for i in range(prev, end) if i in bad)
                            if names is None:
                                raise InputError(f"cannot use the CSV header: {reason}")
                            yield (base + prev + 1, _join(lines, prev, end), None, reason)
                        elif names is None:
                            names = self.names = _canonical_header(row, self.aliases)
                            width = len(names)
                            yield None
                        elif not row or (len(row) == 1 and not row[0].strip()):
                            pass  # a blank line carries nothing; it is not a row
                        elif len(row) == width:
                            yield (base + prev + 1, lines[prev] if end - prev == 1 else "".join(lines[prev:end]), row, None)
                        else:
                            yield (base + prev + 1, _join(lines, prev, end), None, f"expected {width} fields, got {len(row)}")
                        prev = end
                    break
                except csv.Error as exc:
                    end = reader.line_num
                    if not last and end == len(lines) and str(exc).startswith("unexpected end of data"):
                        carry = lines[prev:]
                        carry_bad = {i - prev: reason for i, reason in bad.items() if i >= prev}
                        break
                    if names is None:
                        raise InputError(f"cannot read the CSV header: {exc}") from exc
                    yield (base + prev + 1, _join(lines, prev, end), None, f"malformed CSV: {exc}")
                    prev = end
            base += prev


def _join(lines: list[str], start: int, end: int) -> str:
    return "".join(lines[start:end]).rstrip("\r\n")


def _json_object(raw: str, aliases: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """Parse one JSONL record into canonical field names, or raise RowError."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise RowError(f"bad JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise RowError("bad JSON: nested too deeply") from None
    if not isinstance(obj, dict):
        raise RowError(f"bad JSON: expected an object, got {type(obj).__name__}")
    if "\\u" in raw:
        reason = unstorable(obj)
        if reason:
            raise RowError(reason)
    lookup = _lookup(aliases)
    return {lookup.get(k.lower(), k): v for k, v in obj.items()}


def _lookup(aliases: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """alias -> canonical name, built once per aliases mapping (it is asked per JSONL line)."""
    cached = _LOOKUPS.get(id(aliases))
    if cached is None or cached[0] is not aliases:  # the mapping is kept, so its id cannot be reused
        cached = _LOOKUPS[id(aliases)] = (aliases, {alias: canon for canon, names in aliases.items() for alias in names})
    return cached[1]


_LOOKUPS: dict[int, tuple[Mapping[str, Sequence[str]], dict[str, str]]] = {}


def read_jsonl(stream: IO[bytes], aliases: Mapping[str, Sequence[str]], *, progress: Callable[[int], None] | None = None) -> Iterator[RawRow]:
    done = 0
    for line_no, raw_bytes in enumerate(stream, start=1):
        done += len(raw_bytes)
        if progress is not None and not line_no & 2047:
            progress(done)
        try:
            raw = raw_bytes.decode("utf-8")
            error = None
        except UnicodeDecodeError:
            raw = raw_bytes.decode("utf-8", errors="replace")
            error = "not valid utf-8 text"
        raw = raw.rstrip("\r\n")
        if line_no == 1 and raw.startswith("\ufeff"):
            raw = raw[1:]
        if error:
            yield RawRow(line_no, raw, None, error)
            continue
        if not raw.strip():
            continue
        if "\x00" in raw:
            yield RawRow(line_no, raw.replace("\x00", "\ufffd"), None, NUL_REASON)
            continue
        try:
            fields = _json_object(raw, aliases)
        except RowError as exc:
            yield RawRow(line_no, raw, None, str(exc))
            continue
        yield RawRow(line_no, raw, fields)
    if progress is not None:
        progress(done)


def read_event_objects(objects: Sequence[Any]) -> Iterator[RawRow]:
    """Decoded JSON values (the events of an API request) as RawRows numbered
    from 0, read by the JSONL rules: each is re-encoded as one JSONL line, so
    aliases, escapes and rejections are exactly those of a file."""
    for index, obj in enumerate(objects):
        raw = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
        try:
            raw.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: keep it escaped so the reader rejects it by its rule
            raw = json.dumps(obj, separators=(",", ":"))
        try:
            yield RawRow(index, raw, _json_object(raw, EVENT_ALIASES))
        except RowError as exc:
            yield RawRow(index, raw, None, str(exc))


def detect_format(path: str, fmt: str | None) -> str:
    if fmt:
        fmt = fmt.lower()
        if fmt not in ("csv", "jsonl"):
            raise InputError(f"unknown format {fmt!r}", hint="use csv or jsonl")
        return fmt
    lowered = path.lower()
    if lowered.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if lowered.endswith((".csv", ".tsv")):
        return "csv"
    if path == "-":
        raise InputError("cannot guess the format of stdin", hint="pass --format csv or --format jsonl")
    raise InputError(f"cannot guess the format of {path}", hint="pass --format csv or --format jsonl")


def _open(path: str) -> tuple[IO[bytes], str, int]:
    if path == "-":
        return sys.stdin.buffer, "<stdin>", 0
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such file: {path}")
    return p.open("rb"), str(p.resolve()), p.stat().st_size


# ---------------------------------------------------------------- ingestor
class Ingestor:
    def __init__(self, store: EventStore, batch_size: int = 5000, progress: ProgressFn | None = None,
                 rules: ValueRules = DEFAULT_RULES):
        self.store = store
        self.rules = rules
        self.batch_size = max(1, batch_size)
        self.progress = progress
        # Item ids this ingestor saw committed: their stub check is skipped (items are never deleted).
        self._known_items: set[str] = set()

    # events -------------------------------------------------------------
    def ingest_events(self, path: str, fmt: str | None = None) -> IngestReport:
        fmt = detect_format(path, fmt)
        stream, source, size = _open(path)
        try:
            rows = self._rows(stream, fmt, EVENT_ALIASES, size, path)
            return self.ingest_event_rows(rows, source, fmt)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()

    def ingest_event_rows(self, rows: Iterable[RawRow], source: str, fmt: str,
                          transform: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
                          header: Sequence[str] | None = None,
                          constants: Mapping[str, Any] | None = None) -> IngestReport:
        """Validate and store event rows in batches; every row lands in exactly one count.

        `constants` are fields every row gets (MovieLens ratings: type=rating);
        unlike a `transform` they are stored with quarantined rows, so a
        retried row is rebuilt exactly as it was first read.
        """
        report = IngestReport(source, "events")
        quarantine = _QuarantineContext("events", source, fmt, rows, header, constants)
        reasons = report.reasons
        good: list[tuple] = []
        bad: list[QuarantinedRow] = []
        batch_size = self.batch_size
        if transform is None and isinstance(rows, read_csv) and rows.names is not None:
            # The hot path: CSV records stay lists, and a picker hands their values to the same rules.
            pick = rows.picker(EVENT_FIELDS, constants)
            records: Iterable[Any] = rows.records()

            rules = self.rules

            def validate(row: Any) -> tuple:
                return event_values(*pick(row), rules)
        else:
            records = rows

            def validate(fields: Any) -> tuple:
                if constants:
                    fields = {**fields, **constants}
                if transform is not None:
                    fields = transform(fields)
                return event_fields(fields, self.rules)

        for line_no, raw, row, error in records:
            if row is not None:
                try:
                    good.append(validate(row))
                except RowError as exc:
                    error = str(exc)
                else:
                    if len(good) + len(bad) >= batch_size:
                        self._flush_events(good, bad, report)
                    continue
            error = error or "unreadable row"
            bad.append(quarantine.row(line_no, raw, error))
            reasons[_reason_kind(error)] += 1
            if len(good) + len(bad) >= batch_size:
                self._flush_events(good, bad, report)
        self._flush_events(good, bad, report)
        return report

    def _flush_events(self, good: list[tuple], bad: list[QuarantinedRow], report: IngestReport) -> None:
        if not good and not bad:
            return
        new_items = set(map(_ITEM_OF, good))
        new_items -= self._known_items
        new_items.discard(None)
        accepted, duplicates = self.store.write_event_rows(good, bad, item_ids=new_items)
        self._known_items |= new_items  # committed now
        report.read += len(good) + len(bad)
        report.accepted += accepted
        report.duplicates += duplicates
        report.rejected += len(bad)
        good.clear()
        bad.clear()

    # catalog ------------------------------------------------------------
    def ingest_catalog(self, path: str, fmt: str | None = None) -> IngestReport:
        fmt = detect_format(path, fmt)
        stream, source, size = _open(path)
        try:
            return self.ingest_item_rows(self._rows(stream, fmt, ITEM_ALIASES, size, path), source, fmt)
        finally:
            if stream is not sys.stdin.buffer:
                stream.close()

    def ingest_item_rows(self, rows: Iterable[RawRow], source: str, fmt: str,
                         transform: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None,
                         header: Sequence[str] | None = None) -> IngestReport:
        report = IngestReport(source, "catalog")
        quarantine = _QuarantineContext("catalog", source, fmt, rows, header, None)
        good: dict[str, Item] = {}
        bad: list[QuarantinedRow] = []
        pending = 0

        def flush() -> None:
            if not good and not bad:
                return
            with self.store.transaction() as conn:
                written, unchanged = self.store.upsert_items(list(good.values()), conn)
                self.store.quarantine_rows(bad, conn)
            self._known_items.update(good)  # committed now
            report.accepted += written
            report.duplicates += unchanged
            report.rejected += len(bad)
            good.clear()
            bad.clear()

        for line_no, raw, fields, error in rows:
            report.read += 1
            try:
                if fields is None:
                    raise RowError(error or "unreadable row")
                item = parse_item(transform(fields) if transform else fields, self.rules)
                if item.item_id in good:  # the later row of a file wins; the earlier counts as a duplicate
                    report.duplicates += 1
                good[item.item_id] = item
            except RowError as exc:
                bad.append(quarantine.row(line_no, raw, str(exc)))
                report.reasons[_reason_kind(str(exc))] += 1
            pending += 1
            if pending >= self.batch_size:
                flush()
                pending = 0
        flush()
        return report

    # quarantine ---------------------------------------------------------
    def retry_quarantine(self, ids: Sequence[int] | None = None) -> IngestReport:
        """Re-validate open quarantined rows; rows that now pass are ingested and resolved.

        Rows that still fail stay open with their (possibly new) reason.
        """
        report = IngestReport("quarantine", "retry")
        open_rows = self.store.open_quarantine(ids=ids)
        for start in range(0, len(open_rows), self.batch_size):
            events_ok: list[tuple] = []
            items_ok: list[Item] = []
            resolved: list[int] = []
            still_bad: list[tuple[int, str]] = []
            for row in open_rows[start : start + self.batch_size]:
                report.read += 1
                try:
                    fields = _reparse(row)
                    if row["kind"] == "events":
                        events_ok.append(event_fields(fields, self.rules))
                    else:
                        items_ok.append(parse_item(fields, self.rules))
                except RowError as exc:
                    still_bad.append((row["id"], str(exc)))
                    report.reasons[_reason_kind(str(exc))] += 1
                    continue
                resolved.append(row["id"])
            with self.store.transaction() as conn:
                if events_ok:
                    accepted, duplicates = self.store.write_event_rows(events_ok, (), conn)
                    report.accepted += accepted
                    report.duplicates += duplicates
                if items_ok:
                    written, unchanged = self.store.upsert_items(items_ok, conn)
                    report.accepted += written
                    report.duplicates += unchanged
                self.store.resolve_quarantine(resolved, conn)
                for qid, reason in still_bad:
                    self.store.update_quarantine_reason(qid, reason, conn)
            report.rejected += len(still_bad)
        return report

    # helpers ------------------------------------------------------------
    def _rows(self, stream: IO[bytes], fmt: str, aliases, size: int, path: str = "") -> Iterable[RawRow]:
        progress = (lambda done: self.progress(done, size)) if self.progress and size else None
        if fmt == "csv":
            return read_csv(stream, aliases, progress=progress, delimiter="\t" if path.lower().endswith(".tsv") else ",")
        return read_jsonl(stream, aliases, progress=progress)


class _QuarantineContext:
    """What a quarantined row needs besides its raw text to be re-read later:
    the CSV header, the delimiter and any constant fields."""

    def __init__(self, kind: str, source: str, fmt: str, rows: Iterable[RawRow],
                 header: Sequence[str] | None, constants: Mapping[str, Any] | None):
        self.kind, self.source, self.fmt = kind, source, fmt
        self.rows = rows
        self.header = list(header) if header is not None else None
        self.constants = dict(constants) if constants else None

    def row(self, line_no: int, raw: str, reason: str) -> QuarantinedRow:
        header = self.header
        if header is None and self.fmt == "csv":
            header = getattr(self.rows, "names", None)
        delimiter = getattr(self.rows, "delimiter", ",")
        return QuarantinedRow(self.kind, self.source, line_no, raw.rstrip("\r\n"), reason, self.fmt, header,
                              delimiter, self.constants)


def _reparse(row: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild a quarantined row's fields from its (possibly fixed) raw text."""
    raw = row["raw"]
    context = json.loads(row["header"]) if row["header"] else {}
    if isinstance(context, list):  # the original form: just the CSV header
        context = {"columns": context}
    constants = context.get("constants") or {}
    if row["reason"].startswith(("not valid ", NUL_REASON)) and "\ufffd" in raw:
        raise RowError(row["reason"])  # still the replacement characters put in when it was read
    if "\x00" in raw:
        raise RowError(NUL_REASON)
    if row["format"] == "csv":
        header = context.get("columns")
        if not header:
            raise RowError("cannot retry: the row's CSV header is unknown")
        try:
            rows = list(csv.reader(io.StringIO(raw, newline=""), delimiter=context.get("delimiter", ","), strict=True))
        except csv.Error as exc:
            raise RowError(f"malformed CSV: {exc}") from None
        if len(rows) != 1 or len(rows[0]) != len(header):
            raise RowError(f"expected {len(header)} fields, got {len(rows[0]) if len(rows) == 1 else 'several lines'}")
        fields = dict(zip(header, rows[0]))
    else:
        fields = _json_object(raw, EVENT_ALIASES if row["kind"] == "events" else ITEM_ALIASES)
    if constants:
        fields.update(constants)
    return fields


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: 'unknown event type 'foo'' -> 'unknown event type'."""
    for marker in (" '", ' "', ": ", " at column"):
        if marker in reason:
            reason = reason.split(marker, 1)[0]
    return reason
