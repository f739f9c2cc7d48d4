"""Result files of bulk operations: rendered JSONL on disk, partial files and synthetic large ones.

``render_result`` runs a bulk query over a shop's dataset the way Shopify writes its
result (``jsonl`` projects and flattens); ``read_chunks`` streams any result file from a
byte offset (the download host's ``Range`` support).
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from graphql import FieldNode, FragmentDefinitionNode, OperationDefinitionNode, ValueNode, parse

from shopify_sync.emulator import jsonl
from shopify_sync.emulator.dataset import catalog
from shopify_sync.emulator.fast import iter_lines
from shopify_sync.emulator.fast_results import render_orders
from shopify_sync.emulator.search import compile_query, sort_orders
from shopify_sync.emulator.state import EmulatorState


@dataclass
class ResultFile:
    path: Path | None  # None: synthetic (large_result)
    size: int
    object_count: int
    root_count: int
    synthetic: tuple[bytes, int, bytes] | None = None  # (block, repeats, tail)


def render_result(state: EmulatorState, shop: str, query: str, grouped: bool, path: Path) -> ResultFile:
    """Run the bulk ``query`` over ``shop``'s current orders into ``path`` (JSONL)."""
    if state.params(shop).orders > state.MATERIALISE_UP_TO:
        # Big datasets: the sync's own query through the fast writer (same bytes).
        counts = render_orders(state, shop, query, grouped, path)
        if counts is not None:
            return ResultFile(path, path.stat().st_size, *counts)
    doc = parse(query)
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    projector = jsonl.Projector(fragments)
    ops = [d for d in doc.definitions if isinstance(d, OperationDefinitionNode)]
    objects = roots = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for root_field in (f for o in ops for f in o.selection_set.selections if isinstance(f, FieldNode)):
            node_sel = projector.node_selection(root_field)
            if node_sel is None:
                continue
            raws = _root_nodes(state, shop, root_field)
            trees = (projector.tree(r, node_sel, None) for r in raws)
            for line in jsonl.flatten(trees, grouped, state.config.ungrouped_page):
                fh.write(jsonl.dumps(line))
                objects += 1
                roots += "__parentId" not in line
    return ResultFile(path, path.stat().st_size, objects, roots)


def _root_nodes(state: EmulatorState, shop: str, root_field: FieldNode) -> Iterator[dict[str, object]]:
    args = {a.name.value: a.value for a in root_field.arguments}

    def literal(name: str) -> object:
        v: ValueNode | None = args.get(name)
        return getattr(v, "value", None) if v is not None else None

    name = root_field.name.value
    if name == "orders":
        search = literal("query")
        sort_key = literal("sortKey")
        pred = compile_query(search if isinstance(search, str) else None)
        reverse = str(literal("reverse")).lower() == "true"
        selected = sort_orders([o for o in state.iter_orders(shop) if pred(o)],
                               sort_key if isinstance(sort_key, str) else None, reverse)
        titles = state.product_titles(shop)
        return (jsonl.raw_order(o, titles) for o in selected)
    if name == "products":
        return (jsonl.raw_product(p) for p in catalog(state.config.seed, shop))
    if name == "productVariants":
        search = literal("query")
        return state.product_catalog.root_nodes(shop, search if isinstance(search, str) else None)
    return iter(())  # not modelled: an empty connection


def partial_result(full: ResultFile, path: Path) -> ResultFile:
    """The first half of ``full``'s lines (what a FAILED operation's partialDataUrl serves)."""
    assert full.path is not None
    objects = roots = 0
    with open(full.path, encoding="utf-8") as src, open(path, "w", encoding="utf-8", newline="\n") as dst:
        for line in itertools.islice(src, max(1, full.object_count // 2)):
            dst.write(line)
            objects += 1
            roots += '"__parentId"' not in line
    return ResultFile(path, path.stat().st_size, objects, roots)


def damage_result(full: ResultFile, defect: str | None, missing_lines: int = 0) -> ResultFile:
    """``full`` with one bad line in its middle (``defect``) and/or without its last
    ``missing_lines`` lines. ``objectCount`` / ``rootObjectCount`` stay those of the full
    result (what Shopify reported), ``fileSize`` is the damaged file's: the download is
    intact, the content is not."""
    if full.path is None:
        raise ValueError("a synthetic (large_result) file cannot be damaged")
    target = max(0, full.object_count // 2)  # the middle: earlier chunks commit before it
    keep = full.object_count - missing_lines
    out = full.path.with_name(full.path.name + ".damaged")
    with open(full.path, encoding="utf-8") as src, open(out, "w", encoding="utf-8", newline="\n") as dst:
        for number, line in enumerate(src):
            if number >= keep:
                break
            if defect is not None and number >= target:
                damaged = _damage(line, defect)
                if damaged is not None:
                    line, defect = damaged, None
            dst.write(line)
    os.replace(out, full.path)
    return ResultFile(full.path, full.path.stat().st_size, full.object_count, full.root_count)


def _damage(line: str, defect: str) -> str | None:
    """The damaged line, or None when this line cannot carry the defect (orphan: a root line)."""
    if defect == "truncated_line":
        return line[: len(line) // 2] + "\n"
    if defect == "not_json":
        return "<html><body>502 Bad Gateway</body></html>\n"
    obj = json.loads(line)
    if "__parentId" not in obj:
        return None
    kind = str(obj["__parentId"]).rsplit("/", 2)[-2]
    obj["__parentId"] = f"gid://shopify/{kind}/999999999999"  # no line of the file has this id
    return jsonl.dumps(obj)


def synthetic_result(state: EmulatorState, shop: str, grouped: bool, size: int) -> ResultFile:
    """``size`` bytes of valid JSONL: a block (<= 1 MiB) of real order lines, repeated.

    Ids repeat from one block to the next: this is for download/memory tests, not
    for warehouse contents. The last line is padded so the total is exact.
    """
    pad_template = '{"id":"gid:\\/\\/shopify\\/Order\\/1","note":"%s"}\n'
    minimum = len(pad_template % "")
    if size < minimum:
        raise ValueError(f"large_result size_bytes must be >= {minimum}")
    block = bytearray()
    block_lines: list[bytes] = []
    for line in iter_lines(state.params(shop), grouped=grouped):
        if len(block) + len(line) > min(size, 1 << 20):
            break
        block += line
        block_lines.append(line)
    if not block:
        return ResultFile(None, size, 1, 1, synthetic=(b"", 0, (pad_template % ("x" * (size - minimum))).encode()))
    full, rest = divmod(size, len(block))
    tail = bytearray()
    tail_lines = 0
    if rest:
        if rest < minimum:  # too small for a padding line: rebuild the last block as the tail
            full -= 1
            rest += len(block)
        for raw in block_lines:
            if len(tail) + len(raw) + minimum > rest:
                break
            tail += raw
            tail_lines += 1
        tail += (pad_template % ("x" * (rest - len(tail) - minimum))).encode()
        tail_lines += 1
    count = full * len(block_lines) + tail_lines
    roots_in_block = sum(1 for raw in block_lines if b'"__parentId"' not in raw)
    roots = full * roots_in_block + sum(1 for raw in bytes(tail).splitlines() if b'"__parentId"' not in raw)
    return ResultFile(None, size, count, roots, synthetic=(bytes(block), full, bytes(tail)))


def read_chunks(result: ResultFile, offset: int = 0, chunk: int = 1 << 16) -> Iterator[bytes]:
    """The result's bytes from ``offset`` on, in chunks (files are never read whole)."""
    if result.path is not None:
        with open(result.path, "rb") as fh:
            fh.seek(offset)
            while data := fh.read(chunk):
                yield data
        return
    assert result.synthetic is not None
    block, full, tail = result.synthetic
    skip_blocks, skip = divmod(offset, len(block)) if block else (0, offset)
    for _ in range(skip_blocks, full):
        yield block[skip:]
        skip = 0
    if tail:
        yield tail[max(0, offset - full * len(block)):] if skip_blocks >= full else tail
