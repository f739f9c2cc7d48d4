"""One contract, two stores: every test here runs on the local folder and on S3 (moto server)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from shopify_sync.storage import (
    InvalidKeyError,
    LocalObjectStore,
    ObjectNotFoundError,
    ObjectStore,
    ObjectStoreError,
    ObjectStoreResource,
    S3ObjectStore,
    open_store,
)
from shopify_sync_tests.storage.s3_server import aws_env, make_bucket, moto_endpoint  # noqa: F401


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "local":
        return LocalObjectStore(tmp_path / "objects")
    endpoint = request.getfixturevalue("moto_endpoint")
    request.getfixturevalue("aws_env")
    return S3ObjectStore(make_bucket(endpoint), "objects", endpoint_url=endpoint)


def test_put_get_overwrite_delete(store: ObjectStore) -> None:
    key = "measurement/sales/shop=DE/date=2026-01-02/part-0.parquet"
    assert not store.exists(key)
    store.put_bytes(key, b"first")
    assert store.exists(key)
    assert store.get_bytes(key) == b"first"
    store.put_bytes(key, b"second, longer")  # a re-run overwrites, never duplicates
    assert store.get_bytes(key) == b"second, longer"
    assert store.list_keys("measurement/") == [key]
    store.delete(key)
    assert not store.exists(key)
    store.delete(key)  # deleting a missing object is not an error
    assert store.list_keys("") == []


def test_missing_object_raises_a_clear_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFoundError, match="no object 'nope/x.json'") as info:
        store.get_bytes("nope/x.json")
    # Callers may catch it either way.
    assert isinstance(info.value, KeyError) and isinstance(info.value, FileNotFoundError)
    with pytest.raises(ObjectNotFoundError):
        store.download_file("nope/x.json", tmp_path / "dl" / "x.json")
    assert not (tmp_path / "dl" / "x.json").exists()


def test_list_keys_is_a_sorted_string_prefix(store: ObjectStore) -> None:
    keys = ["a/b/1", "a/b/2", "a/bc/3", "a/c/4", "b/5", "top"]
    for k in reversed(keys):
        store.put_bytes(k, k.encode())
    assert store.list_keys("") == keys
    assert store.list_keys("a/b") == ["a/b/1", "a/b/2", "a/bc/3"]
    assert store.list_keys("a/b/") == ["a/b/1", "a/b/2"]
    assert store.list_keys("a/c/4") == ["a/c/4"]
    assert store.list_keys("t") == ["top"]
    assert store.list_keys("zzz/") == []


def test_file_round_trip_preserves_bytes(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    payload = os.urandom(300_000) + b"\n\x00\xff tail"
    src.write_bytes(payload)
    store.put_file("raw/shopify/shop=DE/REPLAY/date=2026-01-01/r.jsonl", src)
    out = tmp_path / "out" / "deep" / "copy.jsonl"
    store.download_file("raw/shopify/shop=DE/REPLAY/date=2026-01-01/r.jsonl", out)
    assert out.read_bytes() == payload
    assert store.get_bytes("raw/shopify/shop=DE/REPLAY/date=2026-01-01/r.jsonl") == payload


def test_local_file_is_the_object_itself_only_on_a_local_store(store: ObjectStore, tmp_path: Path) -> None:
    store.put_bytes("raw/a.jsonl", b"x\n")
    local = store.local_file("raw/a.jsonl")
    if isinstance(store, LocalObjectStore):
        assert local is not None and local.read_bytes() == b"x\n"
        with pytest.raises(ObjectNotFoundError):
            store.local_file("raw/missing.jsonl")
    else:
        assert local is None  # S3: the caller downloads


def test_move_file_stores_the_bytes_and_takes_the_file(store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "download.jsonl"
    payload = os.urandom(200_000)
    src.write_bytes(payload)
    store.put_bytes("raw/m.jsonl", b"old")
    store.move_file("raw/m.jsonl", src)
    assert store.get_bytes("raw/m.jsonl") == payload and not src.exists()
    if isinstance(store, LocalObjectStore):  # renamed in, yet owner-only as a put_file copy is
        local = store.local_file("raw/m.jsonl")
        assert local is not None and local.stat().st_mode & 0o777 == 0o600
    with pytest.raises(FileNotFoundError, match="no local file"):
        store.move_file("raw/m.jsonl", src)
    assert store.get_bytes("raw/m.jsonl") == payload


def test_put_file_of_a_missing_path_names_it(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no local file"):
        store.put_file("k", tmp_path / "missing.jsonl")
    assert not store.exists("k")


@pytest.mark.parametrize("key", ["../escape", "/etc/passwd", "a/../../b", "a//b", ".tmp-x"])
def test_unsafe_keys_never_touch_the_store(store: ObjectStore, key: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidKeyError):
        store.put_bytes(key, b"x")
    with pytest.raises(InvalidKeyError):
        store.get_bytes(key)
    with pytest.raises(InvalidKeyError):
        store.list_keys(key)
    assert store.list_keys("") == []
    assert not (tmp_path / "escape").exists()


def test_put_bytes_rejects_text(store: ObjectStore) -> None:
    with pytest.raises(TypeError, match="needs bytes"):
        store.put_bytes("k", "text")  # type: ignore[arg-type]


def test_url_for_names_the_object(store: ObjectStore) -> None:
    url = store.url_for("a/b.json")
    assert url.startswith(store.url) and url.endswith("/a/b.json")


# -- local store specifics -------------------------------------------------------------


def test_local_crash_mid_write_keeps_the_old_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put_bytes("raw/x.jsonl", b"old complete object")
    src = tmp_path / "big.jsonl"
    src.write_bytes(b"y" * 100_000)

    def crash(fsrc, fdst, length=0):  # the process dies after writing part of the copy
        fdst.write(fsrc.read(1000))
        raise KeyboardInterrupt

    monkeypatch.setattr(shutil, "copyfileobj", crash)
    with pytest.raises(KeyboardInterrupt):
        store.put_file("raw/x.jsonl", src)
    assert store.get_bytes("raw/x.jsonl") == b"old complete object"
    assert sorted(p.name for p in (tmp_path / "objects" / "raw").iterdir()) == ["x.jsonl"]


def test_local_listing_ignores_in_flight_temp_files(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put_bytes("t/a.json", b"{}")
    (tmp_path / "objects" / "t" / ".tmp-abc123").write_bytes(b"partial")
    assert store.list_keys("t/") == ["t/a.json"]


def test_local_delete_prunes_empty_folders(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    store.put_bytes("a/b/c/d.json", b"1")
    store.put_bytes("a/keep.json", b"2")
    store.delete("a/b/c/d.json")
    assert not (tmp_path / "objects" / "a" / "b").exists()
    assert store.list_keys("") == ["a/keep.json"]


def test_construction_does_no_io(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    store = open_store(f"file://{root}")
    assert isinstance(store, LocalObjectStore) and not root.exists()
    assert store.list_keys("") == [] and not root.exists()
    # An unreachable endpoint is fine until the first request.
    s3 = open_store("s3://bucket/some/prefix", endpoint_url="http://127.0.0.1:9")
    assert isinstance(s3, S3ObjectStore)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("bucket", "some/prefix", "http://127.0.0.1:9")
    assert s3.url_for("k/v") == "s3://bucket/some/prefix/k/v"


@pytest.mark.parametrize(
    ("url", "match"),
    [
        ("", "empty"),
        ("/abs/path", "must be file:///abs/path or s3://"),
        ("ftp://host/x", "must be file:///abs/path or s3://"),
        ("file://relative/path", "three slashes"),
        ("s3:///prefix-only", "needs a bucket"),
        ("s3://AKIA:secret@bucket/p", "must not embed credentials"),
    ],
)
def test_open_store_rejects_bad_urls_naming_the_variable(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        open_store(url)
    assert "SHOPIFY_SYNC_STORAGE_URL" in str(info.value)
    assert "secret" not in str(info.value)


def test_resource_builds_the_store_once(tmp_path: Path) -> None:
    resource = ObjectStoreResource(url=f"file://{tmp_path}/objects")
    store = resource.get_store()
    assert isinstance(store, LocalObjectStore) and resource.get_store() is store
    store.put_bytes("k", b"v")
    assert (tmp_path / "objects" / "k").read_bytes() == b"v"


# -- S3 specifics (real HTTP to the moto server) -------------------------------------------


def test_s3_prefixes_isolate_stores(moto_endpoint: str, aws_env: None) -> None:  # noqa: F811
    bucket = make_bucket(moto_endpoint)
    one = open_store(f"s3://{bucket}/one", endpoint_url=moto_endpoint)
    two = open_store(f"s3://{bucket}/two", endpoint_url=moto_endpoint)
    root = open_store(f"s3://{bucket}", endpoint_url=moto_endpoint)
    one.put_bytes("k.json", b"1")
    two.put_bytes("k.json", b"2")
    assert one.get_bytes("k.json") == b"1" and two.get_bytes("k.json") == b"2"
    assert one.list_keys("") == ["k.json"]
    assert root.list_keys("") == ["one/k.json", "two/k.json"]


def test_s3_big_file_goes_multipart(moto_endpoint: str, aws_env: None, tmp_path: Path) -> None:  # noqa: F811
    bucket = make_bucket(moto_endpoint)
    mib = 1024 * 1024
    store = S3ObjectStore(bucket, "p", endpoint_url=moto_endpoint, multipart_threshold=5 * mib,
                          multipart_chunksize=5 * mib)
    src = tmp_path / "big.jsonl"
    src.write_bytes(os.urandom(11 * mib))
    store.put_file("raw/big.jsonl", src)
    etag = store.client.head_object(Bucket=bucket, Key="p/raw/big.jsonl")["ETag"]
    assert etag.strip('"').endswith("-3")  # S3's multipart ETag: <md5 of md5s>-<part count>
    out = tmp_path / "back.jsonl"
    store.download_file("raw/big.jsonl", out)
    assert out.read_bytes() == src.read_bytes()


def test_s3_missing_bucket_is_a_clear_error(moto_endpoint: str, aws_env: None) -> None:  # noqa: F811
    store = open_store("s3://no-such-bucket-here/p", endpoint_url=moto_endpoint)
    with pytest.raises(ObjectStoreError, match="s3://no-such-bucket-here/p/k.*NoSuchBucket"):
        store.put_bytes("k", b"v")


def test_s3_unreachable_endpoint_is_a_clear_error(aws_env: None) -> None:  # noqa: F811
    store = S3ObjectStore("b", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(ObjectStoreError, match="s3://b/k") as info:
        store.get_bytes("k")
    assert "testing-secret" not in str(info.value)


def test_s3_listing_a_missing_bucket_is_a_clear_error(moto_endpoint: str, aws_env: None) -> None:  # noqa: F811
    store = open_store("s3://no-such-bucket-here/p", endpoint_url=moto_endpoint)
    with pytest.raises(ObjectStoreError, match=r"list s3://no-such-bucket-here/p/telemetry/sync/\* failed: NoSuchBucket"):
        store.list_keys("telemetry/sync/")
    with pytest.raises(ObjectStoreError, match=r"list s3://no-such-bucket-here/p/\* failed"):
        store.list_keys("")


def test_s3_without_credentials_says_which_variables(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
                                                     tmp_path: Path) -> None:
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = open_store("s3://bucket/p", endpoint_url=moto_endpoint)
    with pytest.raises(ObjectStoreError, match="no AWS credentials found .*AWS_ACCESS_KEY_ID"):
        store.get_bytes("k")


def test_empty_objects_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    # A bulk operation over an empty window has no result file: the archive is an empty object.
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    store.put_file("raw/empty.jsonl", empty)
    store.put_bytes("raw/empty-bytes.jsonl", b"")
    assert store.exists("raw/empty.jsonl") and store.get_bytes("raw/empty.jsonl") == b""
    assert store.get_bytes("raw/empty-bytes.jsonl") == b""
    out = tmp_path / "out.jsonl"
    store.download_file("raw/empty.jsonl", out)
    assert out.exists() and out.read_bytes() == b""
