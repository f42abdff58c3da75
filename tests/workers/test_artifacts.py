"""The artifact store without Ray: keys, content-addressed trees, the node cache (verified, bounded, safe under
concurrent fetches), references and the job-folder mirror, on ``file://`` and on a local S3 server (moto)."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.s3 import s3_server
from workers.artifacts.cache import NodeCache
from workers.artifacts.localize import Localizer
from workers.artifacts.mirror import FolderMirror, same_place
from workers.artifacts.refs import ArtifactRef, is_ref
from workers.artifacts.store import ArtifactError, FsspecStore, check_key
from workers.artifacts.trees import TreePublisher, blob_key, read_tree, tree_key


def _folder(root: Path, name: str = "ckpt", payload: bytes = b"w" * 1000) -> Path:
    folder = root / name
    (folder / "sub").mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(payload)
    (folder / "config.json").write_text('{"a": 1}')
    (folder / "sub" / "vocab.txt").write_text("x\ny\n")
    (folder / ".hidden").write_text("not published")
    return folder


@pytest.fixture(scope="module")
def s3_env() -> Iterator[dict[str, str]]:
    with s3_server("mlac-unit") as env:
        yield env


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FsspecStore:
    if request.param == "file":
        return FsspecStore(f"file://{tmp_path / 'store'}")
    env = request.getfixturevalue("s3_env")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return FsspecStore(f"s3://mlac-unit/{tmp_path.name}")


def test_a_store_reads_the_environment_it_is_opened_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two S3 servers one after the other (as the multi-node and these tests run in one session): the second store
    talks to the second server, not to a file system fsspec cached for the first (found in CI)."""
    for run in range(2):
        with s3_server("mlac-env") as env:
            for k, v in env.items():
                monkeypatch.setenv(k, v)
            store = FsspecStore("s3://mlac-env/p")
            store.write(f"k{run}.txt", b"x")
            assert store.exists(f"k{run}.txt") and not store.exists(f"k{1 - run}.txt")  # a fresh server each time


def test_keys_are_plain() -> None:
    assert check_key("jobs/a1/audit/result.json") == "jobs/a1/audit/result.json"
    for bad in ("../etc/passwd", "/abs", "a//b", "a/../b", "a\nb", "", "a/./b"):
        with pytest.raises(ArtifactError):
            check_key(bad)


def test_objects_round_trip(store: FsspecStore) -> None:
    store.write("jobs/j/a.json", b"{}")
    store.write("jobs/j/deep/b.bin", b"\x00" * 10)
    assert store.read("jobs/j/a.json") == b"{}" and store.size("jobs/j/deep/b.bin") == 10
    assert store.list("jobs/j") == ["jobs/j/a.json", "jobs/j/deep/b.bin"]
    assert store.list("jobs/none") == [] and store.size("nope") is None and not store.exists("nope")
    with pytest.raises(ArtifactError, match="not in"):
        store.read("jobs/j/missing")


def test_a_tree_publishes_once_and_fetches_verified(store: FsspecStore, tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    pub = TreePublisher(store)
    tree_id = pub.publish(folder)
    assert pub.publish(folder) == tree_id  # remembered: not hashed or sent again
    tree = read_tree(store, tree_id)
    assert set(tree.files) == {"model.safetensors", "config.json", "sub/vocab.txt"}  # hidden files stay home
    cache = NodeCache(tmp_path / "cache")
    local = cache.materialise(store, tree_id, "ckpt")
    assert local.name == "ckpt" and (local / "sub" / "vocab.txt").read_text() == "x\ny\n"
    assert cache.materialise(store, tree_id, "ckpt") == local and (cache.fetched, cache.hits) == (1, 1)
    # Same bytes elsewhere: same tree, nothing new stored.
    twin = _folder(tmp_path / "elsewhere")
    assert TreePublisher(store).publish(twin) == tree_id


def test_a_tampered_blob_is_refused(store: FsspecStore, tmp_path: Path) -> None:
    tree_id = TreePublisher(store).publish(_folder(tmp_path))
    sha = read_tree(store, tree_id).files["model.safetensors"][0]
    store.write(blob_key(sha), b"w" * 999 + b"X")  # same size, other bytes
    cache = NodeCache(tmp_path / "cache")
    with pytest.raises(ArtifactError, match="does not match its sha256"):
        cache.materialise(store, tree_id, "ckpt")
    assert not (cache.trees_dir / tree_id / "ckpt").exists()  # nothing half-made is left to be used
    store.write(tree_key(tree_id), b'{"format": "forged"}')
    with pytest.raises(ArtifactError, match="does not hash to its id"):
        cache.materialise(store, tree_id, "ckpt")


def test_concurrent_fetches_of_one_tree_fetch_it_once(tmp_path: Path) -> None:
    store = FsspecStore(str(tmp_path / "store"))
    tree_id = TreePublisher(store).publish(_folder(tmp_path, payload=os.urandom(2_000_000)))
    cache_root = tmp_path / "cache"
    caches = [NodeCache(cache_root) for _ in range(6)]
    paths: list[Path] = []
    threads = [threading.Thread(target=lambda c=c: paths.append(c.materialise(store, tree_id, "ckpt"))) for c in caches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(paths)) == 1 and sum(c.fetched for c in caches) == 1
    assert not list((cache_root / ".staging").glob("*"))


def test_the_cache_stays_within_its_bound_least_recently_used_first(tmp_path: Path) -> None:
    store = FsspecStore(str(tmp_path / "store"))
    pub = TreePublisher(store)
    ids = [pub.publish(_folder(tmp_path / f"src{i}", payload=bytes([i]) * 100_000)) for i in range(3)]
    cache = NodeCache(tmp_path / "cache", max_bytes=250_000, min_idle_s=0)
    first = cache.materialise(store, ids[0], "ckpt")
    second = cache.materialise(store, ids[1], "ckpt")
    old = time.time() - 3600
    os.utime(first / ".complete", (old, old))  # used long ago
    third = cache.materialise(store, ids[2], "ckpt")
    assert not first.exists() and second.exists() and third.exists()
    # A tree used recently is kept even over the bound (a trial may be loading it).
    busy = NodeCache(tmp_path / "cache", max_bytes=1, min_idle_s=600)
    assert busy.evict() == 0 and second.exists()


def test_references_round_trip_and_paths_become_references(tmp_path: Path) -> None:
    store = FsspecStore(str(tmp_path / "store"))
    loc_api = Localizer(store, NodeCache(tmp_path / "api-cache"))
    folder = _folder(tmp_path / "api")
    data = tmp_path / "api" / "ds"
    data.mkdir()
    (data / "data.parquet").write_bytes(b"PAR1")
    (data / "data.task.json").write_text("{}")
    (data / "other.log").write_text("not the dataset's")  # a file's own tree holds it and its companions only
    ref = loc_api.portable(str(folder))
    file_ref = loc_api.portable(str(data / "data.parquet"))
    assert is_ref(ref) and ArtifactRef.parse(ref).folder == "ckpt"
    assert ArtifactRef.parse(file_ref).file == "data.parquet"
    assert loc_api.portable("tiny") == "tiny" and loc_api.portable(ref) == ref  # not a path / already portable
    node = Localizer(store, NodeCache(tmp_path / "node-cache"))
    local = Path(node.local(ref))
    assert local.name == "ckpt" and local.is_relative_to(tmp_path / "node-cache")  # the label survives the trip
    assert Path(node.local(file_ref)).read_bytes() == b"PAR1"
    assert sorted(p.name for p in Path(node.local(file_ref)).parent.iterdir()) == [".complete", "data.parquet",
                                                                                    "data.task.json"]
    assert node.portable(str(local)) == ref  # a cached tree maps back without publishing again
    with pytest.raises(ArtifactError):
        ArtifactRef.parse("mlac-artifact://../../etc")


def test_the_mirror_pushes_changes_and_pulls_them_elsewhere(store: FsspecStore, tmp_path: Path) -> None:
    work = tmp_path / "node-a" / "jobs" / "j1"
    (work / "audit").mkdir(parents=True)
    (work / "audit" / "result.json").write_text('{"v": 1}')
    (work / "trials").mkdir()
    (work / "trials" / "t.json").write_text("{}")
    db = work / "audit" / "optuna.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table t (x int)")
        conn.execute("insert into t values (42)")
    mirror = FolderMirror(store, "jobs/j1", work, exclude=("trials",))
    assert mirror.push() == 2 and mirror.push() == 0  # nothing changed: nothing sent
    (work / "audit" / "result.json").write_text('{"v": 2, "more": true}')
    assert mirror.push() == 1
    elsewhere = tmp_path / "node-b" / "jobs" / "j1"
    assert FolderMirror(store, "jobs/j1", elsewhere).pull() == 2
    assert (elsewhere / "audit" / "result.json").read_text() == '{"v": 2, "more": true}'
    assert not (elsewhere / "trials").exists()
    with sqlite3.connect(elsewhere / "audit" / "optuna.db") as conn:
        assert conn.execute("select x from t").fetchall() == [(42,)]


def test_a_pulled_database_drops_the_stale_journal_beside_it(store: FsspecStore, tmp_path: Path) -> None:
    """A driver killed mid-write leaves ``optuna.db-journal``; pulling the store's copy over its database must not
    let SQLite roll that journal into the new file (found by the e2e killed-server test: "malformed")."""
    work = tmp_path / "a"
    work.mkdir()
    with sqlite3.connect(work / "optuna.db") as conn:
        conn.execute("create table t (x int)")
        conn.executemany("insert into t values (?)", [(i,) for i in range(500)])
    FolderMirror(store, "jobs/j2", work).push()
    stale = tmp_path / "b"
    stale.mkdir()
    (stale / "optuna.db").write_bytes(b"\0" * 100)
    (stale / "optuna.db-journal").write_bytes(b"\1" * 4096)
    assert FolderMirror(store, "jobs/j2", stale).pull() == 1
    assert not (stale / "optuna.db-journal").exists()
    with sqlite3.connect(stale / "optuna.db") as conn:
        assert conn.execute("select count(*) from t").fetchone() == (500,)


def test_a_local_store_is_its_own_job_folder(tmp_path: Path) -> None:
    store = FsspecStore(str(tmp_path / "artifacts"))
    assert same_place(store, "jobs/j1", tmp_path / "artifacts" / "jobs" / "j1")
    assert not same_place(store, "jobs/j1", tmp_path / "elsewhere")
    assert FolderMirror(store, "jobs/j1", tmp_path / "artifacts" / "jobs" / "j1").pull() == 0
