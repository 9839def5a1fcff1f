"""Readers of event and catalog records: CSV and JSONL streams, and the decoded
JSON objects of an API request, as RawRows (line number, raw text, fields in
canonical names, or the reason the record is unusable).

They validate nothing beyond splitting a record into fields: the value rules
are tastebud.profiles.events', applied by the Ingestor (tastebud.profiles.ingest).
"""

from __future__ import annotations

import csv
import json
import re
import sys
from operator import itemgetter
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Mapping, NamedTuple, Sequence

from tastebud.profiles.events import RowError, unstorable
from tastebud.errors import InputError


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


class RawRow(NamedTuple):
    """One record as read: a tuple, because ingestion makes 100k+ of them."""

    line_no: int  # where the record starts
    raw: str  # its text; a good CSV record keeps its line end (stripped only if quarantined)
    fields: Mapping[str, Any] | None  # None when the row could not even be split
    error: str | None = None


_LINE = re.compile(r"[^\n]*\n|[^\n]+")
_BLINE = re.compile(rb"[^\n]*\n|[^\n]+")
BLOCK_SIZE = 1 << 18
_END = object()
NUL_REASON = "contains a NUL character"  # PostgreSQL text cannot hold one; SQLite could, but both must agree
_new_row = tuple.__new__  # RawRow without the Python-level __new__: this runs per record


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


def json_object(raw: str, aliases: Mapping[str, Sequence[str]]) -> dict[str, Any]:
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
            fields = json_object(raw, aliases)
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
            yield RawRow(index, raw, json_object(raw, EVENT_ALIASES))
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


def open_source(path: str) -> tuple[IO[bytes], str, int]:
    """(binary stream, source name to record, size in bytes or 0); "-" is stdin."""
    if path == "-":
        return sys.stdin.buffer, "<stdin>", 0
    p = Path(path)
    if not p.is_file():
        raise InputError(f"no such file: {path}")
    return p.open("rb"), str(p.resolve()), p.stat().st_size

