"""Ingestion of event and catalog files (CSV, JSONL, MovieLens) with quarantine.

Every row read is counted exactly once as accepted, duplicate or rejected.
Rejected rows go to the quarantine table with source, line number, raw text and
reason, in the same transaction as their batch's good rows, so an interrupted
ingest can simply be rerun. The readers that split files into rows are in
tastebud.profiles.readers.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from operator import itemgetter
from typing import IO, Any, Callable, Iterable, Mapping, Sequence

from tastebud import pii
from tastebud.profiles.events import DEFAULT_RULES, EVENT_FIELDS, Item, RowError, ValueRules, event_fields, event_values, parse_item
from tastebud.profiles.readers import (EVENT_ALIASES, ITEM_ALIASES, NUL_REASON, RawRow, detect_format, json_object,
                                       open_source, read_csv, read_jsonl)
from tastebud.profiles.store import EventStore, QuarantinedRow

ProgressFn = Callable[[int, int], None]  # (bytes done, bytes total)
_ITEM_OF = itemgetter(2)  # item_id of an event tuple


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
        stream, source, size = open_source(path)
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
            raw_kept = self.rules.store_raw_text  # a reason may echo a field ("unparsable timestamp '…'")
            bad.append(quarantine.row(line_no, raw if raw_kept else pii.mask(raw), error if raw_kept else pii.mask(error)))
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
        stream, source, size = open_source(path)
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
        fields = json_object(raw, EVENT_ALIASES if row["kind"] == "events" else ITEM_ALIASES)
    if constants:
        fields.update(constants)
    return fields


def _reason_kind(reason: str) -> str:
    """Group reasons for the summary: 'unknown event type 'foo'' -> 'unknown event type'."""
    for marker in (" '", ' "', ": ", " at column"):
        if marker in reason:
            reason = reason.split(marker, 1)[0]
    return reason
