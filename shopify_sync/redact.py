"""Secrets out of every text the project writes: logs, telemetry, ``sync_job.last_error``, API errors.

Shopify tokens, the staff API token, AWS secrets and database-URL passwords are
replaced by ``<redacted>``: the values configured in the environment by name, and
anything shaped like one (``shpat_…``, bearer headers, ``password=…``, ``user:pw@host``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import unquote

REDACTED = "<redacted>"
_SECRET_PATTERNS = (
    # Shopify Admin / custom-app / partner tokens.
    re.compile(r"\bshp(?:at|ca|pa|ss|ua)_[A-Za-z0-9]{8,}"),
    # Authorization headers and token query/JSON fields.
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(r"(?i)((?:x-shopify-access-token|access[_-]?token|api[_-]?token|password|secret)"
               r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;&}]+"),
    # Query parameters that carry a credential: `?token=`, presigned URLs' signatures.
    re.compile(r"(?i)([?&](?:token|key|sig|signature|client_secret|[a-z-]*(?:signature|credential|security-token))=)"
               r"[^&\s#\"']+"),
)
# scheme://user:password@host → keep user and host, hide the password. The password runs to
# the token's last "@": people write "/" and "@" unencoded in it.
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)(\S+)(@)")
_SECRET_ENV = re.compile(r"^(SHOPIFY_[A-Z0-9_]+_TOKEN|SHOPIFY_SYNC_API_TOKEN|AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN)$")
# Settings that are URLs and may carry a password (the store URL of a shop among them).
_URL_ENV = re.compile(r"^(SHOPIFY_SYNC_DATABASE_URL|SHOPIFY_SYNC_STORAGE_URL|SHOPIFY_SYNC_S3_ENDPOINT_URL"
                      r"|SHOPIFY_[A-Z0-9_]+_STORE)$")


def env_secrets(environ: Mapping[str, str] | None = None) -> list[str]:
    """Secret values configured in the environment (tokens, AWS secret, URL passwords)."""
    env = os.environ if environ is None else environ
    found = [v for k, v in env.items() if _SECRET_ENV.match(k) and v and len(v.strip()) >= 4]
    for name, url in env.items():
        m = _URL_PASSWORD.search(url) if _URL_ENV.match(name) else None
        if m and len(m.group(2)) >= 4:
            # As written in the URL and as a driver's message shows it, percent-decoded.
            found += [m.group(2), unquote(m.group(2))]
    return [s.strip() for s in found]


def scrub_secrets(text: str, secrets: Iterable[str] = (), *, include_env: bool = True) -> str:
    """``text`` with every known secret and secret-looking token replaced by ``<redacted>``."""
    known = [s for s in secrets if s] + (env_secrets() if include_env else [])
    # Longest first, so a secret containing another is removed whole.
    for secret in sorted(set(known), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _URL_PASSWORD.sub(lambda m: f"{m.group(1)}{REDACTED}{m.group(3)}", text)
    text = _SECRET_PATTERNS[0].sub(REDACTED, text)
    for pattern in _SECRET_PATTERNS[1:]:
        text = pattern.sub(lambda m: f"{m.group(1)}{REDACTED}", text)
    return text


