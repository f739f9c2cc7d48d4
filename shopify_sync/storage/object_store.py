"""The object store ("R2", SPEC §1/§6): a local folder or any S3-compatible bucket.

Both implementations share one contract so the sync, the metrics and telemetry
never care where objects live:

- a ``put`` replaces the whole object or nothing (a re-run overwrites, a crash never
  leaves half an object behind);
- ``list_keys`` is a plain string-prefix listing returning sorted keys;
- a missing object raises ``ObjectNotFoundError`` (a ``KeyError`` and a
  ``FileNotFoundError``, so callers may catch either), and ``delete`` of a missing
  object is a no-op (S3 semantics);
- construction does no I/O and no network, so stores can be built at
  definitions-load time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ParamSpec, TypeVar
from urllib.parse import quote, unquote, urlparse

from shopify_sync.errors import summarize_error
from shopify_sync.storage.keys import validate_key, validate_prefix

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig

# boto3 switches to multipart above this size; R2 and S3 need >= 5 MiB parts, and
# big parts keep the part count (max 10,000) far from the limit for multi-GB files.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
MULTIPART_CHUNK = 16 * 1024 * 1024
_TMP_PREFIX = ".tmp-"
_P = ParamSpec("_P")
_R = TypeVar("_R")


class ObjectStoreError(RuntimeError):
    """The store could not be reached or refused an operation; the message says which and why."""


class ObjectNotFoundError(ObjectStoreError, FileNotFoundError, KeyError):
    """No object at that key."""

    def __init__(self, key: str, where: str) -> None:
        self.key = key
        super().__init__(f"no object {key!r} in {where}")

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class ObjectStore(ABC):
    """Byte objects addressed by ``/``-separated relative keys (see ``keys.py``)."""

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None:
        """Create or replace the object atomically."""

    @abstractmethod
    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """Upload a local file (streamed; multipart when big), replacing the object atomically."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The whole object; ``ObjectNotFoundError`` when missing."""

    @abstractmethod
    def download_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """Stream the object to ``path`` (written atomically); ``ObjectNotFoundError`` when missing."""

    def local_file(self, key: str) -> Path | None:
        """The object's own file when the store is a local folder (to read, never to write), else None."""
        return None

    def move_file(self, key: str, path: str | os.PathLike[str]) -> None:
        """``put_file``, then the local file is gone: a local store may take the file itself."""
        self.put_file(key, path)
        Path(path).unlink()

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix`` (a string prefix, not a folder), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; a missing object is not an error."""

    @abstractmethod
    def url_for(self, key: str) -> str:
        """Where the object lives, for display (never a signed URL, never a credential)."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The store's own URL (``file:///…`` or ``s3://bucket/prefix``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def _copy_from(source: Path, fh: BinaryIO) -> None:
    with source.open("rb") as src:
        shutil.copyfileobj(src, fh, length=1024 * 1024)


class LocalObjectStore(ObjectStore):
    """Objects as files under ``root``; writes go to a hidden temp file then ``os.replace``."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        root_path = Path(root)
        if not root_path.is_absolute():
            raise ValueError(f"local object store root must be an absolute path, got {str(root)!r}")
        self.root = root_path

    @property
    def url(self) -> str:
        return f"file://{quote(self.root.as_posix())}"

    def url_for(self, key: str) -> str:
        return f"file://{quote(self._path(key).as_posix())}"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _atomic_write(self, target: Path, write: Callable[[BinaryIO], object]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Same directory as the target so os.replace is a rename on one filesystem.
        fd, tmp = tempfile.mkstemp(prefix=_TMP_PREFIX, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    def put_bytes(self, key: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"put_bytes needs bytes, got {type(data).__name__} for {key!r}")
        self._atomic_write(self._path(key), lambda fh: fh.write(data))

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        target = self._path(key)
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"put_file({key!r}): no local file at {source}")

        self._atomic_write(target, lambda fh: _copy_from(source, fh))

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFoundError(key, self.url) from None

    def download_file(self, key: str, path: str | os.PathLike[str]) -> None:
        source = self._path(key)
        if not source.is_file():
            raise ObjectNotFoundError(key, self.url)

        self._atomic_write(Path(path), lambda fh: _copy_from(source, fh))

    def move_file(self, key: str, path: str | os.PathLike[str]) -> None:
        # A rename instead of a copy when the file is on the store's filesystem: a 1M-order
        # raw file is a gigabyte (docs/benchmarks.md). Made durable first, as a copy would be.
        target, source = self._path(key), Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"move_file({key!r}): no local file at {source}")
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb+") as fh:
            # Owner-only, as put_file's mkstemp copy is: raw files and events hold order data.
            os.fchmod(fh.fileno(), 0o600)
            os.fsync(fh.fileno())
        try:
            os.replace(source, target)
        except OSError:  # another filesystem
            self.put_file(key, source)
            source.unlink()
            return
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the rename itself
        finally:
            os.close(dir_fd)

    def local_file(self, key: str) -> Path | None:
        # Objects are replaced by rename, never rewritten in place: a reader's open file
        # keeps its content.
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFoundError(key, self.url)
        return path

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def _walk(self, base: Path) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if not name.startswith("."):
                    yield Path(dirpath, name)

    def list_keys(self, prefix: str = "") -> list[str]:
        validate_prefix(prefix)
        # Only walk the deepest folder the prefix names, so listing one run's
        # telemetry does not scan the whole store.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root.joinpath(*folder.split("/")) if folder else self.root
        if not base.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self._walk(base))
        return sorted(k for k in keys if k.startswith(prefix))

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return
        # Prune folders left empty so listings and the tree stay tidy; a concurrent
        # writer recreating one is harmless (mkdir(exist_ok=True) in _atomic_write).
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                break
            parent = parent.parent


class S3ObjectStore(ObjectStore):
    """Objects in ``s3://bucket/prefix`` on AWS S3, Cloudflare R2, MinIO, … (``endpoint_url``).

    Credentials come from the standard AWS variables / profiles, resolved by boto3
    when the first request is made; this object never holds them.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any | None = None,
        multipart_threshold: int = MULTIPART_THRESHOLD,
        multipart_chunksize: int = MULTIPART_CHUNK,
    ) -> None:
        if not bucket or "/" in bucket:
            raise ValueError(f"S3 bucket name must be non-empty without '/', got {bucket!r}")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        if self.prefix:
            validate_key(self.prefix)
        self.endpoint_url = endpoint_url
        self.region_name = region_name
        self._client = client
        self.multipart_threshold = multipart_threshold
        self.multipart_chunksize = multipart_chunksize

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def url_for(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._full(key)}"

    def __repr__(self) -> str:
        endpoint = f", endpoint_url={self.endpoint_url!r}" if self.endpoint_url else ""
        return f"S3ObjectStore({self.url!r}{endpoint})"

    @property
    def client(self) -> Any:
        # Any: boto3 builds its clients at runtime and ships no types for them. boto3 is
        # imported on first use, as stores are built at definitions load (no I/O there).
        if self._client is None:
            import boto3
            from botocore.config import Config

            region = (
                self.region_name
                or os.environ.get("AWS_REGION")
                or os.environ.get("AWS_DEFAULT_REGION")
                # R2 accepts only "auto"; plain AWS needs a real region.
                or ("auto" if self.endpoint_url else "us-east-1")
            )
            config = Config(
                retries={"max_attempts": 5, "mode": "standard"},
                # Path-style works on every S3-compatible server (MinIO, moto, R2);
                # virtual hosts need DNS per bucket, which custom endpoints often lack.
                s3={"addressing_style": "path"} if self.endpoint_url else None,
                # Newer botocore sends CRC checksums by default; several S3-compatible
                # stores reject or mangle them, so only send them where S3 requires.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            self._client = boto3.session.Session().client(
                "s3", endpoint_url=self.endpoint_url, region_name=region, config=config
            )
        return self._client

    def _full(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _error(self, action: str, key: str, exc: Exception, *, listing: bool = False) -> ObjectStoreError:
        from botocore.exceptions import ClientError, NoCredentialsError

        # A listing prefix is not a key (may be empty or end with "/"): show it as is.
        where = f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}{key}*" if listing else self.url_for(key)
        if isinstance(exc, NoCredentialsError):
            return ObjectStoreError(
                f"{action} {where}: no AWS credentials found "
                "(set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or an AWS profile)"
            )
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            code = err.get("Code", "?")
            if code in ("404", "NoSuchKey", "NotFound") and not listing:
                return ObjectNotFoundError(key, self.url)
            return ObjectStoreError(f"{action} {where} failed: {code} {err.get('Message', '')}".rstrip())
        # Connection / endpoint errors: the type and message name the endpoint.
        return ObjectStoreError(f"{action} {where} failed: {summarize_error(exc).one_line()}")

    def _call(self, action: str, key: str, fn: Callable[_P, _R], *args: _P.args, **kwargs: _P.kwargs) -> _R:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(*args, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise self._error(action, key, exc) from None

    def _transfer_config(self) -> TransferConfig:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(multipart_threshold=self.multipart_threshold,
                              multipart_chunksize=self.multipart_chunksize, max_concurrency=4)

    def put_bytes(self, key: str, data: bytes) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(f"put_bytes needs bytes, got {type(data).__name__} for {key!r}")
        full = self._full(key)
        self._call("put", key, self.client.put_object, Bucket=self.bucket, Key=full, Body=bytes(data))

    def put_file(self, key: str, path: str | os.PathLike[str]) -> None:
        source = Path(path)
        if not source.is_file():
            raise FileNotFoundError(f"put_file({key!r}): no local file at {source}")
        full = self._full(key)
        # S3 makes a (multipart) upload visible only once complete: atomic by design.
        self._call("upload", key, self.client.upload_file, str(source), self.bucket, full,
                   Config=self._transfer_config())

    def get_bytes(self, key: str) -> bytes:
        full = self._full(key)
        resp = self._call("get", key, self.client.get_object, Bucket=self.bucket, Key=full)
        return self._call("get", key, resp["Body"].read)

    def download_file(self, key: str, path: str | os.PathLike[str]) -> None:
        full = self._full(key)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        # boto3 writes to a temp name and renames when done, so ``path`` is never half-written.
        self._call("download", key, self.client.download_file, self.bucket, full, str(target),
                   Config=self._transfer_config())

    def exists(self, key: str) -> bool:
        full = self._full(key)
        try:
            self._call("head", key, self.client.head_object, Bucket=self.bucket, Key=full)
        except ObjectNotFoundError:
            return False
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        validate_prefix(prefix)
        base = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        try:
            # Paginated: list_objects_v2 returns at most 1,000 keys per call.
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                               Prefix=base + prefix):
                keys.extend(obj["Key"][len(base):] for obj in page.get("Contents", []))
        except (ClientError, BotoCoreError) as exc:
            raise self._error("list", prefix, exc, listing=True) from None
        return sorted(keys)

    def delete(self, key: str) -> None:
        full = self._full(key)
        self._call("delete", key, self.client.delete_object, Bucket=self.bucket, Key=full)


def open_store(url: str, endpoint_url: str | None = None) -> ObjectStore:
    """``file:///abs/path`` → ``LocalObjectStore``; ``s3://bucket/prefix`` → ``S3ObjectStore``.

    Raises ``ValueError`` naming ``SHOPIFY_SYNC_STORAGE_URL`` for anything else.
    """
    if not isinstance(url, str) or not url.strip():
        raise ValueError("SHOPIFY_SYNC_STORAGE_URL: empty storage URL")
    parsed = urlparse(url.strip())
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(
                f"SHOPIFY_SYNC_STORAGE_URL: file URL must be file:///abs/path (three slashes), got {url!r}"
            )
        path = unquote(parsed.path)
        if not path.startswith("/"):
            raise ValueError(f"SHOPIFY_SYNC_STORAGE_URL: file URL must be absolute, got {url!r}")
        return LocalObjectStore(path)
    if parsed.scheme == "s3":
        if "@" in parsed.netloc or ":" in parsed.netloc:
            # Never echo the URL here: it may carry credentials.
            raise ValueError("SHOPIFY_SYNC_STORAGE_URL: s3 URL must not embed credentials or a port "
                             "(use AWS_* variables and SHOPIFY_SYNC_S3_ENDPOINT_URL)")
        if not parsed.netloc:
            raise ValueError(f"SHOPIFY_SYNC_STORAGE_URL: s3 URL needs a bucket (s3://bucket/prefix), got {url!r}")
        try:
            return S3ObjectStore(parsed.netloc, unquote(parsed.path), endpoint_url=endpoint_url or None)
        except ValueError as exc:
            raise ValueError(f"SHOPIFY_SYNC_STORAGE_URL: {exc}") from None
    raise ValueError(f"SHOPIFY_SYNC_STORAGE_URL: must be file:///abs/path or s3://bucket/prefix, got {url!r}")
