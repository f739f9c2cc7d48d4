"""What the emulator's handlers answer; ``server.py`` writes it to the socket."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # streamed bodies: (content_length, chunk iterator); send fewer bytes to simulate truncation
    stream: tuple[int, Iterator[bytes]] | None = None

    @classmethod
    def json(cls, status: int, payload: object, headers: dict[str, str] | None = None) -> Response:
        return cls(status, json.dumps(payload, separators=(",", ":")).encode(),
                   {"Content-Type": "application/json; charset=utf-8", **(headers or {})})
