"""The shape the code keeps (issue 12): small modules and functions, one owner of job state.

These are source checks, not behaviour: they fail when a change makes a module or a
function too long to read in one sitting, or puts SQL on the job ledger outside
``warehouse/jobs.py``.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "shopify_sync"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60
# A longer function says why in a comment on its ``def`` line or the line above it.
JUSTIFIED = re.compile(r"#\s*long:")
LEDGER_TABLES = {"sync_job", "sync_watermark"}
LEDGER_SQL = re.compile(r"\b(FROM|UPDATE|INTO|JOIN|TABLE)\s+[`\"]?sync_(job|watermark)\b(?!_)", re.IGNORECASE)
# Where the ledger tables may be named: their owner, their definition, their migrations.
LEDGER_HOMES = {"warehouse/jobs.py", "warehouse/tables.py"}


def _sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "migrations" not in p.relative_to(PACKAGE).parts)


def test_no_module_is_over_500_lines() -> None:
    long = {str(p.relative_to(PACKAGE)): n for p in _sources()
            if (n := p.read_text().count("\n")) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


def test_no_function_is_over_60_lines_without_a_reason() -> None:
    found = []
    for path in _sources():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            around = " ".join(lines[max(first - 2, 0): node.lineno])
            if length > MAX_FUNCTION_LINES and not JUSTIFIED.search(around):
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name} ({length} lines)")
    assert not found, "functions over 60 lines with no '# long:' reason:\n" + "\n".join(found)


def test_only_the_job_ledger_module_touches_sync_job_and_sync_watermark() -> None:
    offenders = []
    for path in _sources():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel in LEDGER_HOMES:
            continue
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if (tok.type == tokenize.NAME and tok.string in LEDGER_TABLES) or (
                    tok.type == tokenize.STRING and LEDGER_SQL.search(tok.string)):
                offenders.append(f"{rel}:{tok.start[0]}: {tok.line.strip()}")
    assert not offenders, "sync_job / sync_watermark used outside warehouse/jobs.py:\n" + "\n".join(offenders)


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """The ledger check is not vacuous: it flags a table reference and raw SQL alike."""
    sample = 'from x import sync_job\nq = "UPDATE sync_job SET status = 1"\nmsg = "no sync_job_changes"\n'
    toks = list(tokenize.generate_tokens(io.StringIO(sample).readline))
    hits = [t for t in toks if (t.type == tokenize.NAME and t.string in LEDGER_TABLES)
            or (t.type == tokenize.STRING and LEDGER_SQL.search(t.string))]
    assert [t.start[0] for t in hits] == [1, 2]
