"""Content hashes (BLAKE3) and the cache's store path: hard links, read-only, checked on lookup."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from blut_core import App, ExecOptions, RunSummary
from blut_core.host.log import configure_logging
from blut_core.model.hashing import EMPTY_TREE, HASH, canonical_json, file_hash, tree_hash, tree_manifest
from blut_core.run.orchestrate import prepare, start_run
from blut_core.store.cache import Cache, cache_key

# The BLAKE3 test vectors (github.com/BLAKE3-team/BLAKE3, test_vectors.json): the input of
# length n is bytes 0, 1, ..., 250, 0, 1, ... (i % 251); the first 32 bytes of its hash.
VECTORS = {
    0: "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
    1: "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
    1024: "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
    1025: "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
    102400: "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085",
}


def _vector_input(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


@pytest.mark.parametrize("n", sorted(VECTORS))
def test_file_hash_is_blake3_of_the_bytes(tmp_path: Path, n: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(_vector_input(n))
    assert HASH == "blake3"
    assert file_hash(path) == VECTORS[n]


def test_a_big_file_hashes_as_its_bytes_do_in_memory(tmp_path: Path) -> None:
    from blake3 import blake3

    data = os.urandom(3 << 20) + b"tail"  # more than one read buffer, and not a multiple of it
    (tmp_path / "big").write_bytes(data)
    assert file_hash(tmp_path / "big") == blake3(data).hexdigest()
    assert file_hash(tmp_path / "big") != hashlib.sha256(data).hexdigest()


def test_canonical_json_is_sorted_compact_and_refuses_what_is_not_json() -> None:
    value = {"b": [1, 2.5, "é"], "a": {"z": None, "y": True}, "p": Path("/x"), "t": (1, 2),
             "s": {3, 1}}
    assert canonical_json(value) == ('{"a":{"y":true,"z":null},"b":[1,2.5,"é"],"p":"/x",'
                                     '"s":[1,3],"t":[1,2]}')
    assert canonical_json(value) == json.dumps(value, sort_keys=True, separators=(",", ":"),
                                               ensure_ascii=False, default=_plain)
    for bad in (math.nan, math.inf, {"x": object()}):
        with pytest.raises((ValueError, TypeError)):
            canonical_json(bad)
    cycle: list[object] = []
    cycle.append(cycle)
    with pytest.raises(ValueError):
        canonical_json(cycle)


def _plain(value: object) -> object:
    return str(value) if isinstance(value, Path) else sorted(value)  # type: ignore[call-overload]


def test_cache_key_depends_on_identity_and_inputs_not_on_order() -> None:
    identity = {"name": "train", "version": "1", "kind": "python", "what": "m:f",
                "params": {"lr": 0.1, "seed": 7}, "env": {}}
    key = cache_key(identity, {"a": "1" * 64, "b": "2" * 64})
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == cache_key(dict(reversed(identity.items())), {"b": "2" * 64, "a": "1" * 64})
    assert key != cache_key(identity, {"a": "1" * 64, "b": "3" * 64})
    assert key != cache_key({**identity, "version": "2"}, {"a": "1" * 64, "b": "2" * 64})
    with pytest.raises(ValueError):
        cache_key({**identity, "params": {"lr": math.nan}}, {})


def _tree(root: Path) -> Path:
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.bin").write_bytes(os.urandom(2 << 20))
    (root / "sub" / "deep" / "c").write_text("gamma")
    (root / "to-a").symlink_to("a.txt")
    (root / "to-sub").symlink_to("sub")
    return root


def test_store_links_hashes_in_one_walk_and_materialises_the_same_tree(tmp_path: Path) -> None:
    out = _tree(tmp_path / "out")
    before = tree_hash(out)
    cache = Cache(tmp_path / "cache")
    entry = cache.store("ab" * 32, "s", out)
    assert entry.output_hash == before == tree_hash(out)  # storing is not a change
    assert entry.files == 5 and entry.size == 5 + (2 << 20) + 5
    assert [rel for rel, _, _ in tree_manifest(out)] == ["a.txt", "sub/b.bin", "sub/deep/c",
                                                         "to-a", "to-sub"]
    for rel in ("a.txt", "sub/b.bin"):  # one inode each, not copies
        assert os.stat(out / rel).st_ino == os.stat(entry.out / rel).st_ino
    assert cache.lookup("ab" * 32) == entry
    dest = tmp_path / "run" / "stages" / "s" / "out"
    cache.materialize(entry, dest)
    assert tree_hash(dest) == before
    assert (dest / "empty").is_dir() and os.readlink(dest / "to-sub") == "sub"


def test_an_empty_output_is_stored_without_a_copy(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    cache = Cache(tmp_path / "cache")
    entry = cache.store("cd" * 32, "empty", out)
    assert entry.output_hash == EMPTY_TREE == tree_hash(out)
    assert (entry.files, entry.size) == (0, 0)
    assert os.listdir(entry.path) == ["meta.json"]  # not even a directory to make or walk
    assert cache.lookup("cd" * 32) == entry
    dest = tmp_path / "again" / "out"
    cache.materialize(entry, dest)
    assert dest.is_dir() and os.listdir(dest) == []
    assert [p.name for p in (tmp_path / "cache" / "cd").iterdir()] == ["cd" * 32]  # no leftovers
    (out / "sub").mkdir()  # an output of one empty directory is not empty
    kept = cache.store("ce" * 32, "dirs", out)
    assert kept.output_hash == EMPTY_TREE and (kept.out / "sub").is_dir()
    cache.materialize(kept, dest)
    assert os.listdir(dest) == ["sub"]


def _warnings(capsys: pytest.CaptureFixture[str], event: str) -> list[dict[str, object]]:
    lines = [json.loads(ln) for ln in capsys.readouterr().err.splitlines() if ln.startswith("{")]
    return [e for e in lines if e.get("event") == event]


def test_an_entry_stored_by_a_sha256_blut_is_a_miss_not_damage(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="warning", fmt="json")
    out = tmp_path / "out"
    out.mkdir()
    (out / "r.txt").write_text("result")
    sha = hashlib.sha256(b"result").hexdigest()
    manifest = [["r.txt", sha, 6]]
    key = hashlib.sha256(b"old key").hexdigest()
    cache = Cache(tmp_path / "cache")
    old = cache.entry_path(key)
    shutil.copytree(out, old / "out")
    (old / "meta.json").write_text(json.dumps({  # what blut wrote before BLAKE3
        "key": key, "stage": "s", "output_hash": hashlib.sha256(b"x").hexdigest(), "size": 6,
        "files": 1, "created": 1.0, "manifest": manifest}))
    assert cache.lookup(key) is None
    assert _warnings(capsys, "cache_entry_corrupt") == []
    entry = cache.store(key, "s", out)  # the stage ran again: its entry replaces the old one
    assert entry.output_hash == tree_hash(out) and cache.lookup(key) == entry
    assert json.loads((old / "meta.json").read_text())["manifest"] == [
        ["r.txt", file_hash(out / "r.txt"), 6]]


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user may enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="blut-ro-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to another user needs root")
def test_a_stored_file_cannot_be_written_through_the_run_directory(open_dir: Path) -> None:
    out = open_dir / "out"
    out.mkdir()
    (out / "r.txt").write_text("result")
    os.chown(out / "r.txt", 65534, 65534)  # the stage's user owns what it wrote
    entry = Cache(open_dir / "cache").store("ef" * 32, "s", out)
    assert os.stat(out / "r.txt").st_mode & 0o222 == 0
    probe = ("import os, sys; os.setgid(65534); os.setuid(65534)\n"
             "print(open(sys.argv[1]).read())\n"
             "try:\n    open(sys.argv[1], 'a').write('!')\n"
             "except PermissionError:\n    print('refused')\n")
    done = subprocess.run([sys.executable, "-c", probe, str(out / "r.txt")],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["result", "refused"]
    assert (entry.out / "r.txt").read_text() == "result"


def test_a_file_linked_from_outside_is_copied_and_left_writable(tmp_path: Path) -> None:
    outside = tmp_path / "dataset.csv"
    outside.write_text("1,2\n")
    out = tmp_path / "out"
    out.mkdir()
    os.link(outside, out / "dataset.csv")  # a stage that "copies" its input by hard link
    entry = Cache(tmp_path / "cache").store("12" * 32, "s", out)
    assert os.stat(outside).st_mode & 0o200  # the user's file is theirs as it was
    assert os.stat(entry.out / "dataset.csv").st_ino != os.stat(outside).st_ino
    outside.write_text("changed\n")
    assert (entry.out / "dataset.csv").read_text() == "1,2\n"


def _run(app: App, recipe: str) -> RunSummary:
    return start_run(app, prepare(app, recipe, overrides=()), options=ExecOptions())


def test_an_output_written_in_place_after_caching_is_rebuilt_not_served(
        app: App, capsys: pytest.CaptureFixture[str]) -> None:
    first = _run(app, "diamond")
    data = first.run_dir / "stages/a/out/data.json"
    good = data.read_text()
    assert os.stat(data).st_mode & 0o222 == 0  # promoted and stored: read-only
    with open(data, "w") as fh:  # root may write anyway, and the inode is the cache's too
        fh.write('{"tampered": true}')
    configure_logging(level="warning", fmt="json")
    second = _run(app, "diamond")
    states = {o.stage: o.state.value for o in second.stages}
    assert states == {"a": "ok", "b": "cached", "c": "cached", "d": "cached", "e": "cached"}
    [warning] = _warnings(capsys, "cache_entry_changed")  # once: the entry is dropped
    assert "data.json" in str(warning["error"])
    assert (second.run_dir / "stages/a/out/data.json").read_text() == good
    assert json.loads((second.run_dir / "stages/e/out/copied.json").read_text()) == json.loads(good)
    third = _run(app, "diamond")
    assert {o.stage: o.state.value for o in third.stages} == dict.fromkeys("abcde", "cached")
    assert (third.run_dir / "stages/a/out/data.json").read_text() == good


def test_a_run_over_a_cache_written_with_sha256_reruns_quietly_and_caches_anew(
        app: App, capsys: pytest.CaptureFixture[str]) -> None:
    first = _run(app, "diamond")
    for meta_path in app.settings.cache_dir.glob("*/*/meta.json"):  # as a sha256 blut left them
        meta = json.loads(meta_path.read_text())
        meta.pop("hash")
        meta.pop("stamps")
        meta["output_hash"] = hashlib.sha256(meta["output_hash"].encode()).hexdigest()
        meta_path.write_text(json.dumps(meta))
    configure_logging(level="warning", fmt="json")
    second = _run(app, "diamond")
    assert {o.stage: o.state.value for o in second.stages} == dict.fromkeys("abcde", "ok")
    err = capsys.readouterr().err
    assert "cache_entry_corrupt" not in err and "cache_entry_changed" not in err
    assert [o.output_hash for o in second.stages] == [o.output_hash for o in first.stages]
    third = _run(app, "diamond")
    assert {o.stage: o.state.value for o in third.stages} == dict.fromkeys("abcde", "cached")


def test_a_key_built_around_a_stage_identity_encoded_once_is_the_same_key() -> None:
    from blut_core.store.cache import cache_key, identity_text, keyed

    identity = {"name": "train", "version": "2", "kind": "python", "what": "m:f",
                "params": {"lr": 0.1, "tags": ["a", "é"], "n": None}, "env": {"X": "1"}}
    inputs = {"b": "1" * 64, "a": "2" * 64}
    assert keyed(identity_text(identity), inputs) == cache_key(identity, inputs)
    assert keyed(identity_text(identity), {**inputs, "a": "3" * 64}) != cache_key(identity, inputs)
