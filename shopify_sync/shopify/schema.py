"""The Shopify Admin GraphQL schema shipped with the package, and document validation.

Two trimmed introspection results ship as package data next to this module:
``admin_2026-10.schema.json.gz`` and ``admin_2026-01.schema.json.gz``. They are generated
from Shopify's published introspection JSON (npm ``@shopify/dev-mcp`` 1.16.0,
``dist/data/admin_<version>.json.gz``) by ``trim_introspection`` / ``regenerate`` below
(``python -m shopify_sync.shopify.schema /path/to/shopify-admin-schema``): types,
fields, arguments, enum values and deprecations only, descriptions and Shopify's private
annotations stripped, since ``build_client_schema`` needs none of them and it keeps the
wheel small.

Version mapping (``schema_version_for``) and its limits: Shopify publishes one schema per
quarterly version, we ship two. Versions >= 2026-10 (and ``unstable``) validate against
2026-10, everything older against 2026-01. So a field added in 2026-04 is accepted for
2026-01 requests only if it also exists in 2026-01's schema (it does not), and a field
removed after 2025-xx is rejected for 2025-xx requests although that version had it.
Bulk- and version-specific behaviour that the schema snapshots do not capture (e.g. the
``groupObjects`` argument absent before 2025-07, ``bulkOperation(id:)`` absent before
2026-01, ``userErrors.code`` absent before 2025-01) is modelled by the emulator itself.
"""

from __future__ import annotations

import gzip
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from graphql import GraphQLError, GraphQLSchema, IntrospectionQuery, build_client_schema, parse, validate

SCHEMA_DIR = Path(__file__).parent
SHIPPED_VERSIONS: tuple[str, ...] = ("2026-01", "2026-10")
# The newest shipped schema: what `load_schema()` returns by default.
LATEST_SHIPPED = SHIPPED_VERSIONS[-1]


# Introspection JSON as loaded: its shape is checked by ``build_client_schema``, not here.
_Json = dict[str, Any]


class SchemaError(ValueError):
    """An API version string that cannot be mapped to a shipped schema."""


def schema_path(shipped_version: str) -> Path:
    return SCHEMA_DIR / f"admin_{shipped_version}.schema.json.gz"


def schema_version_for(version: str) -> str:
    """The shipped schema used for API ``version`` (``YYYY-MM`` or ``unstable``)."""
    if version == "unstable":
        return LATEST_SHIPPED
    parts = version.split("-")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or len(parts[0]) != 4 or len(parts[1]) != 2:
        raise SchemaError(f"API version must look like 2026-10 or be 'unstable', got {version!r}")
    chosen = SHIPPED_VERSIONS[0]
    for shipped in SHIPPED_VERSIONS:
        if version >= shipped:
            chosen = shipped
    return chosen


@lru_cache(maxsize=len(SHIPPED_VERSIONS))
def _load_shipped(shipped_version: str) -> GraphQLSchema:
    path = schema_path(shipped_version)
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        introspection = json.load(fh)
    return build_client_schema(introspection)


def load_schema(version: str = LATEST_SHIPPED) -> GraphQLSchema:
    """The Admin schema for API ``version`` (cached: building it is slow, see docs/benchmarks.md)."""
    return _load_shipped(schema_version_for(version))


def validation_errors(text: str, version: str = LATEST_SHIPPED) -> list[GraphQLError]:
    """GraphQL errors (syntax or validation) of ``text`` against the schema of ``version``."""
    try:
        document = parse(text)
    except GraphQLError as exc:
        return [exc]
    return list(validate(load_schema(version), document))


def validate_document(text: str, version: str = LATEST_SHIPPED) -> list[str]:
    """Messages of every problem in ``text`` against the Admin schema; ``[]`` when valid."""
    return [err.message for err in validation_errors(text, version)]


# --- regeneration of the shipped files -------------------------------------------------

def _type_ref(ref: _Json | None) -> _Json | None:
    if ref is None:
        return None
    return {"kind": ref["kind"], "name": ref.get("name"), "ofType": _type_ref(ref.get("ofType"))}


def _input_value(v: _Json) -> _Json:
    return {"name": v["name"], "type": _type_ref(v["type"]), "defaultValue": v.get("defaultValue")}


def _deprecation(item: _Json) -> _Json:
    return {"isDeprecated": bool(item.get("isDeprecated")), "deprecationReason": item.get("deprecationReason")}


def _trim_type(t: _Json) -> _Json:
    out: _Json = {"kind": t["kind"], "name": t["name"]}
    if t.get("fields") is not None:
        out["fields"] = [
            {"name": f["name"], "args": [_input_value(a) for a in f.get("args") or []],
             "type": _type_ref(f["type"]), **_deprecation(f)}
            for f in t["fields"]
        ]
    if t.get("inputFields") is not None:
        out["inputFields"] = [_input_value(f) for f in t["inputFields"]]
    if t.get("interfaces") is not None:
        out["interfaces"] = [_type_ref(i) for i in t["interfaces"]]
    if t.get("enumValues") is not None:
        out["enumValues"] = [{"name": e["name"], **_deprecation(e)} for e in t["enumValues"]]
    if t.get("possibleTypes") is not None:
        out["possibleTypes"] = [_type_ref(p) for p in t["possibleTypes"]]
    if t.get("isOneOf"):
        out["isOneOf"] = True
    return out


def trim_introspection(full: _Json) -> _Json:
    """Strip descriptions and private annotations from an introspection result."""
    schema = full["data"]["__schema"] if "data" in full else full["__schema"]
    trimmed = {
        "queryType": schema["queryType"] and {"name": schema["queryType"]["name"]},
        "mutationType": schema.get("mutationType") and {"name": schema["mutationType"]["name"]},
        "subscriptionType": schema.get("subscriptionType") and {"name": schema["subscriptionType"]["name"]},
        "types": [_trim_type(t) for t in schema["types"]],
        "directives": [
            {"name": d["name"], "locations": d["locations"], "isRepeatable": bool(d.get("isRepeatable")),
             "args": [_input_value(a) for a in d.get("args") or []]}
            for d in schema["directives"]
        ],
    }
    return {"__schema": trimmed}


def regenerate(source_dir: Path, dest_dir: Path = SCHEMA_DIR) -> list[Path]:
    """Rewrite the shipped files from ``<source_dir>/admin_<version>.json.gz``."""
    written = []
    for version in SHIPPED_VERSIONS:
        with gzip.open(source_dir / f"admin_{version}.json.gz", "rt", encoding="utf-8") as fh:
            full = json.load(fh)
        trimmed = trim_introspection(full)
        build_client_schema(cast(IntrospectionQuery, trimmed))  # refuse to ship a file that does not load
        dest = dest_dir / f"admin_{version}.schema.json.gz"
        payload = json.dumps(trimmed, separators=(",", ":"), sort_keys=True).encode()
        # mtime=0 keeps the gzip bytes reproducible, so regenerating shows no spurious git diff
        with open(dest, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as gz:
            gz.write(payload)
        written.append(dest)
    _load_shipped.cache_clear()
    return written


if __name__ == "__main__":  # pragma: no cover - maintenance entry point
    src = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/work/shared/reference/shopify-admin-schema")
    for p in regenerate(src):
        print(f"wrote {p} ({p.stat().st_size} bytes)")
