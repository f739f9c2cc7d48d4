"""Reading the bulk JSONL: chunks of whole lines, the Arrow parse, and the prefetch thread.

The file is read in big blocks cut after every ``chunk_rows``-th line (no per-line
Python objects); each chunk is parsed by pyarrow's JSON reader against an explicit
schema (what ``shopify.queries`` selects). There is no per-line ``json.loads`` except
to explain an error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gzip
import io
import json
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.json as pj

from shopify_sync.timeutil import naive_utc, utcnow
from shopify_sync.warehouse.ingest.mapping import LINE_MONEY, ORDER_MONEY, prepare
from shopify_sync.warehouse.ingest.model import ChunkFrames, Clock, IngestError

# -- the JSONL shape (must follow shopify_sync/shopify/queries.py) ---------------------------

_MONEY = pa.struct([("shopMoney", pa.struct([("amount", pa.string()), ("currencyCode", pa.string())]))])
# Where the currency is not stored (orders have their own currencyCode) only the amount
# is parsed: less parse CPU and less parsed memory (docs/benchmarks.md).
_AMOUNT_ONLY = pa.struct([("shopMoney", pa.struct([("amount", pa.string())]))])
_ID = pa.struct([("id", pa.string())])
JSONL_SCHEMA = pa.schema([
    ("id", pa.string()), ("__parentId", pa.string()),
    # Order
    ("name", pa.string()), ("createdAt", pa.string()), ("updatedAt", pa.string()), ("processedAt", pa.string()),
    ("cancelledAt", pa.string()), ("test", pa.bool_()), ("currencyCode", pa.string()),
    ("displayFinancialStatus", pa.string()), ("displayFulfillmentStatus", pa.string()),
    ("currentTotalPriceSet", _AMOUNT_ONLY), ("currentSubtotalPriceSet", _AMOUNT_ONLY),
    ("currentTotalDiscountsSet", _AMOUNT_ONLY), ("currentTotalTaxSet", _AMOUNT_ONLY),
    ("currentShippingPriceSet", _AMOUNT_ONLY), ("totalRefundedSet", _AMOUNT_ONLY),
    ("refunds", pa.list_(pa.struct([("id", pa.string()), ("createdAt", pa.string()),
                                     ("totalRefundedSet", _AMOUNT_ONLY)]))),
    # LineItem
    ("sku", pa.string()), ("title", pa.string()), ("quantity", pa.int64()), ("currentQuantity", pa.int64()),
    ("originalUnitPriceSet", _MONEY), ("discountedUnitPriceAfterAllDiscountsSet", _AMOUNT_ONLY),
    ("discountedTotalSet", _MONEY), ("variant", _ID), ("product", _ID),
])
PARSE_OPTIONS = pj.ParseOptions(explicit_schema=JSONL_SCHEMA, unexpected_field_behavior="ignore")
# One parser thread: on two cores the writer thread and the database server need the
# other one (docs/benchmarks.md).
READ_OPTIONS = pj.ReadOptions(block_size=4 << 20, use_threads=False)
# The system allocator hands freed chunk buffers back to the OS; pyarrow's default pool
# (mimalloc) keeps them, which raised the peak RSS of long ingests.
_POOL = pa.system_memory_pool()
# Reads of 4 MB: bigger ones cost more peak RSS at the same speed (docs/benchmarks.md).
_BLOCK_BYTES = 4 << 20

_EXPECTED: dict[str, type[object]] = {
    "id": str, "__parentId": str, "name": str, "createdAt": str, "updatedAt": str, "processedAt": str,
    "cancelledAt": str, "test": bool, "currencyCode": str, "displayFinancialStatus": str,
    "displayFulfillmentStatus": str, "sku": str, "title": str, "quantity": int, "currentQuantity": int,
    "refunds": list, "variant": dict, "product": dict,
}


def _load_malloc_trim() -> Callable[[], None]:
    """glibc keeps freed memory in per-thread arenas; with the parse thread, pyarrow's workers
    and the driver all allocating, RSS crept up chunk after chunk (docs/benchmarks.md).
    ``malloc_trim`` after each chunk hands it back."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return lambda: None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def run() -> None:
        trim(0)

    return run


malloc_trim = _load_malloc_trim()


def _open(path: Path) -> gzip.GzipFile | io.BufferedReader:
    """The archive may be gzipped (SPEC §6 allows ``.jsonl.gz``): detected by its magic bytes."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def iter_chunks(path: Path, chunk_rows: int) -> Iterator[tuple[int, memoryview, int]]:
    """(index of the chunk's first line, the chunk's bytes, its number of lines).

    The file is read in big blocks and cut after every ``chunk_rows``-th newline, so the
    bytes go to the JSON parser without ever being split into per-line objects. A final
    line without a newline counts as a line, as it does for a line iterator.
    """
    with _open(path) as fh:
        first = 0
        buf, pos = b"", 0          # unconsumed data starts at pos
        end, found = 0, 0          # newlines found so far after pos, and where the last one ends
        eof = False
        while True:
            find = buf.find
            while found < chunk_rows:
                nl = find(b"\n", end)
                if nl < 0:
                    break
                end, found = nl + 1, found + 1
            if found == chunk_rows:
                # A copy, so the chunks in flight do not pin whole read buffers (peak RSS).
                yield first, memoryview(buf[pos:end]), found
                first += found
                pos, found = end, 0
                continue
            if eof:
                if pos < len(buf):
                    yield first, memoryview(buf[pos:]), found + (1 if end < len(buf) else 0)
                return
            block = fh.read(_BLOCK_BYTES)
            eof = not block
            buf, end, pos = buf[pos:] + block, end - pos, 0


def _split_lines(chunk: memoryview | bytes) -> list[bytes]:
    """The chunk's lines (slow path: resume offsets inside a chunk, blank lines, diagnosis)."""
    lines = bytes(chunk).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def cut_lines(chunk: memoryview, n: int) -> tuple[memoryview, memoryview]:
    """(the chunk's first ``n`` lines, the rest): only for a resume point inside a chunk."""
    data = bytes(chunk)
    pos = 0
    for _ in range(n):
        nl = data.find(b"\n", pos)
        if nl < 0:
            pos = len(data)
            break
        pos = nl + 1
    view = memoryview(data)
    return view[:pos], view[pos:]


def _field_error(obj: dict[str, object]) -> str | None:
    """Why a decoded line does not fit the schema, or None."""
    for key, kind in _EXPECTED.items():
        value = obj.get(key)
        if value is None:
            continue
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if ok and isinstance(value, int) and not (-(2**63) <= value < 2**63):
            ok = False
        if not ok:
            return f"field {key!r} must be {kind.__name__}, got {value!r:.80}"
    for key in (*ORDER_MONEY.values(), *LINE_MONEY.values()):
        value = obj.get(key)
        shop_money = value.get("shopMoney") if isinstance(value, dict) else None
        if value is not None and not (isinstance(shop_money, dict) and isinstance(shop_money.get("amount"), str)):
            return f"field {key!r} must be {{shopMoney {{amount currencyCode}}}}, got {value!r:.80}"
    refunds = obj.get("refunds")
    for r in refunds if isinstance(refunds, list) else []:
        if not isinstance(r, dict) or not isinstance(r.get("id"), str):
            return f"malformed refund {r!r:.80}"
    return None


def _diagnose(chunk: memoryview | bytes, first: int, path: Path) -> IngestError:
    """Slow path, only after the fast parser failed: find the first bad line and say why."""
    lines = _split_lines(chunk)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        line_no = first + i + 1
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return IngestError(f"broken JSON ({exc.msg if isinstance(exc, json.JSONDecodeError) else exc})",
                               line_no, path)
        if not isinstance(obj, dict):
            return IngestError(f"expected a JSON object, got {type(obj).__name__}", line_no, path)
        try:
            json.dumps(obj, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            # json.loads accepts "\ud800" alone; Arrow (rightly) does not: it is no character.
            return IngestError("a string holds an unpaired UTF-16 surrogate escape (like \\ud800), "
                               "which is not Unicode text", line_no, path)
        reason = _field_error(obj)
        if reason is not None:
            return IngestError(reason, line_no, path)
    return IngestError(f"could not parse lines {first + 1}-{first + len(lines)}", None, path)


def parse(chunk: memoryview | bytes, n_lines: int, first: int, path: Path) -> pl.DataFrame:
    """The chunk as a frame of ``JSONL_SCHEMA`` columns plus ``_line`` (1-based line numbers)."""
    try:
        table = pj.read_json(pa.BufferReader(pa.py_buffer(chunk)), read_options=READ_OPTIONS,
                             parse_options=PARSE_OPTIONS, memory_pool=_POOL)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _diagnose(chunk, first, path) from exc
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    if frame.height == n_lines:
        line_no = pl.int_range(first + 1, first + 1 + frame.height, eager=True, dtype=pl.Int64)
    else:
        # Blank lines are skipped by the parser; keep real line numbers for errors.
        numbers = [first + i + 1 for i, raw in enumerate(_split_lines(chunk)) if raw.strip()]
        if len(numbers) != frame.height:
            raise _diagnose(chunk, first, path)
        line_no = pl.Series(numbers, dtype=pl.Int64)
    return frame.with_columns(line_no.alias("_line"))


def read_frames(chunk: memoryview | bytes, n_lines: int, first: int, path: Path, shop: str) -> ChunkFrames:
    """Parse and map one chunk (the resume's re-read of the committed prefix)."""
    return prepare(parse(chunk, n_lines, first, path), shop, path, naive_utc(utcnow()))


class _Done:
    """The producer's last item."""


_DONE = _Done()
_Item = tuple[int, int, ChunkFrames] | BaseException | _Done


class Prefetch:
    """Reads, parses and maps the next chunk in a thread while the database writes the current
    one: pyarrow and polars release the GIL, and the drivers wait on sockets, so the two
    overlap. At most two chunks are alive (the one being written, the next one parsed),
    which bounds the memory; errors surface in line order."""

    def __init__(self, path: Path, chunk_rows: int, start_line: int, shop: str) -> None:
        self.path, self.chunk_rows, self.start_line, self.shop = path, chunk_rows, start_line, shop
        self.timings: dict[str, float] = {}
        self._queue: queue.Queue[_Item] = queue.Queue(maxsize=1)
        self._slots = threading.Semaphore(2)  # released by the consumer when a chunk is done
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ingest-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: _Item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        clock = Clock(self.timings)
        try:
            # One loop, no generator between: a suspended generator would keep the chunk's
            # bytes alive past the ``del`` below (peak RSS).
            for first, chunk, n_lines in iter_chunks(self.path, self.chunk_rows):
                if first + n_lines <= self.start_line:
                    continue
                if first < self.start_line:  # a resume point inside this chunk (chunk_rows changed)
                    _, chunk = cut_lines(chunk, self.start_line - first)
                    first, n_lines = self.start_line, first + n_lines - self.start_line
                clock.lap("read")
                while not self._slots.acquire(timeout=0.1):
                    if self._stop.is_set():
                        return
                clock.lap("wait")  # the writer is behind: parsing is not the bottleneck
                parsed = parse(chunk, n_lines, first, self.path)
                clock.lap("parse")
                frames = prepare(parsed, self.shop, self.path, naive_utc(utcnow()))
                del parsed
                clock.lap("prepare")
                del chunk
                if not self._put((first, n_lines, frames)):
                    return
                clock.lap("wait")
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, raised in order
            self._put(exc)
            return
        self._put(_DONE)

    def done(self) -> None:
        """The consumer finished a chunk: the producer may parse one more."""
        self._slots.release()

    def __iter__(self) -> Iterator[tuple[int, int, ChunkFrames]]:
        while True:
            item = self._queue.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
