"""The on-disk cache of decoded images: a dataset of image files (an image folder, a torchvision
dataset) is decoded once, in parallel worker processes, into uint8 shards at one load size; later
studies and trainings memory-map the shards (file-backed pages, not anonymous memory).

Layout: `<cache root>/<key>/` with `index.json` (count, image shape, shards with their byte size
and a checksum of their first and last 64 KiB), `labels.npy` and `shard-NNNNN.npy` ((n, C, H, W)
uint8). The key is a SHA-256 of what the images depend on (the file list with sizes and
modification times, the load size), so a changed folder gets a new cache. A cache is built in a
temporary folder and renamed into place (atomic); one that fails its checks is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from archspec.errors import SearchError

CACHE_VERSION = 1
SHARD_IMAGES = 1024
_EDGE = 64 * 1024  # bytes checked at each end of a shard


def cache_root(configured: str | None = None) -> Path:
    """`data.cache`, else $ARCHSPEC_CACHE, else ~/.cache/archspec/images."""
    if configured:
        return Path(configured)
    if os.environ.get("ARCHSPEC_CACHE"):
        return Path(os.environ["ARCHSPEC_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "archspec" / "images"


def content_key(description: dict[str, Any]) -> str:
    """SHA-256 (hex, first 32 characters) of a JSON description of the cached images."""
    text = json.dumps({"version": CACHE_VERSION, **description}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def file_stats(files: Sequence[Path], root: Path) -> list[tuple[str, int, int]]:
    """(relative path, size, mtime_ns) of each file: what the cache key depends on."""
    stats = []
    for path in files:
        st = path.stat()
        stats.append((path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return stats


class ShardedImages:
    """A cached dataset's images: (N, C, H, W) uint8 over memory-mapped shards, read by index."""

    def __init__(self, folder: Path, shards: list[np.ndarray]):
        self.folder = folder
        self.shards = shards
        self.shard_size = len(shards[0])
        self.shape = (sum(len(s) for s in shards), *shards[0].shape[1:])

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        """Pickled (for a worker process) as the shard files, mapped again on arrival: never
        the images themselves."""
        return {"folder": self.folder, "files": [Path(s.filename).name for s in self.shards]}

    def __setstate__(self, state: dict) -> None:
        shards = [np.load(state["folder"] / name, mmap_mode="r") for name in state["files"]]
        self.__init__(state["folder"], shards)

    def gather(self, index: np.ndarray) -> np.ndarray:
        """Images at `index` (any order), copied into one (len(index), C, H, W) array."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), *self.shape[1:]), dtype=np.uint8)
        shard, offset = np.divmod(index, self.shard_size)
        for s in np.unique(shard):
            where = np.nonzero(shard == s)[0]
            out[where] = self.shards[s][offset[where]]
        return out


@dataclass(frozen=True)
class Decoded:
    images: ShardedImages
    labels: np.ndarray  # (N,) int64
    built: bool  # decoded by this call (False: an existing cache was reused)


# A decode job: decode(start, stop) -> (images (n, C, H, W) uint8, labels (n,)). It runs in a
# worker process (forked, so it need not be picklable) or in this process.
DecodeFn = Callable[[int, int], tuple[np.ndarray, np.ndarray]]
_JOB: DecodeFn | None = None


def decoded(
    root: Path,
    key: str,
    count: int,
    decode: DecodeFn,
    *,
    desc: str,
    workers: int | None = None,
    shard_images: int | None = None,
) -> Decoded:
    """The cache `root/key` of `count` images, built with `decode` when absent or damaged."""
    folder = root / key
    if folder.exists():
        try:
            images, labels = _open(folder, key, count)
            return Decoded(images, labels, built=False)
        except _Damaged as exc:
            _say(f"image cache {folder} is damaged ({exc}); rebuilding")
            shutil.rmtree(folder, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
    try:
        _build(tmp, key, count, decode, desc, workers, shard_images or SHARD_IMAGES)
        try:
            os.rename(tmp, folder)
        except OSError:  # another process finished the same cache first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        images, labels = _open(folder, key, count)
    except _Damaged as exc:
        raise SearchError(
            f"{folder}: the image cache just written fails its checks ({exc})"
        ) from exc
    return Decoded(images, labels, built=True)


class _Damaged(Exception):
    """A cache folder that is incomplete or does not match its index (internal: rebuilt)."""


def _edges_crc(path: Path) -> int:
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(_EDGE)
        handle.seek(max(0, size - _EDGE))
        tail = handle.read(_EDGE)
    return zlib.crc32(tail, zlib.crc32(head))


def _open(folder: Path, key: str, count: int) -> tuple[ShardedImages, np.ndarray]:
    try:
        index = json.loads((folder / "index.json").read_text())
    except (OSError, ValueError) as exc:
        raise _Damaged(f"index.json unreadable: {exc}") from exc
    if index.get("version") != CACHE_VERSION or index.get("key") != key:
        raise _Damaged("index.json is of another cache")
    if index.get("count") != count:
        raise _Damaged(f"{index.get('count')} images recorded, {count} expected")
    shards = []
    try:
        for entry in index["shards"]:
            path = folder / entry["file"]
            if not path.is_file() or path.stat().st_size != entry["bytes"]:
                raise _Damaged(f"{entry['file']} is missing or has the wrong size")
            if _edges_crc(path) != entry["crc"]:
                raise _Damaged(f"{entry['file']} does not match its checksum")
            shard = np.load(path, mmap_mode="r")
            if shard.dtype != np.uint8 or list(shard.shape) != [entry["count"], *index["shape"]]:
                raise _Damaged(f"{entry['file']} has shape {shard.shape}")
            shards.append(shard)
        labels = np.load(folder / "labels.npy")
    except (OSError, ValueError, KeyError) as exc:
        raise _Damaged(str(exc)) from exc
    if len(labels) != count or sum(len(s) for s in shards) != count:
        raise _Damaged("the shards and labels do not hold every image")
    return ShardedImages(folder, shards), labels.astype(np.int64)


def _build(
    tmp: Path,
    key: str,
    count: int,
    decode: DecodeFn,
    desc: str,
    workers: int | None,
    shard_images: int,
) -> None:
    global _JOB
    ranges = [(s, min(count, s + shard_images)) for s in range(0, count, shard_images)]
    workers = max(1, min(workers or os.cpu_count() or 1, len(ranges)))
    progress = _Progress(desc, count)
    results: dict[int, tuple[tuple[int, ...], np.ndarray]] = {}
    if workers == 1:
        for number, (start, stop) in enumerate(ranges):
            results[number] = _write_shard(tmp, number, decode, start, stop)
            progress.update(stop - start)
    else:
        # fork: the job (often a closure over a torchvision dataset) is inherited, not pickled
        context = multiprocessing.get_context("fork" if sys.platform == "linux" else None)
        _JOB = decode
        try:
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {
                    pool.submit(_worker, str(tmp), number, start, stop): (number, stop - start)
                    for number, (start, stop) in enumerate(ranges)
                }
                for future in as_completed(futures):
                    number, done = futures[future]
                    results[number] = future.result()
                    progress.update(done)
        finally:
            _JOB = None
    progress.close()
    shapes = {shape for shape, _ in results.values()}
    if len(shapes) != 1:
        raise SearchError(f"{desc}: images decoded to different shapes {sorted(shapes)}")
    labels = np.concatenate([results[n][1] for n in range(len(ranges))])
    np.save(tmp / "labels.npy", labels)
    shards = []
    for number, (start, stop) in enumerate(ranges):
        path = tmp / f"shard-{number:05d}.npy"
        shards.append(
            {
                "file": path.name,
                "count": stop - start,
                "bytes": path.stat().st_size,
                "crc": _edges_crc(path),
            }
        )
    index = {
        "version": CACHE_VERSION,
        "key": key,
        "count": count,
        "shape": list(shapes.pop()),
        "shards": shards,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (tmp / "index.json").write_text(json.dumps(index, indent=1))


def _worker(tmp: str, number: int, start: int, stop: int):
    assert _JOB is not None  # set by _build before the pool forks
    return _write_shard(Path(tmp), number, _JOB, start, stop)


def _write_shard(
    tmp: Path, number: int, decode: DecodeFn, start: int, stop: int
) -> tuple[tuple[int, ...], np.ndarray]:
    images, labels = decode(start, stop)
    path = tmp / f"shard-{number:05d}.npy"
    with path.open("wb") as handle:
        np.save(handle, np.ascontiguousarray(images, dtype=np.uint8))
        handle.flush()
        os.fsync(handle.fileno())
    return tuple(images.shape[1:]), np.asarray(labels, dtype=np.int64)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class _Progress:
    """A tqdm bar on a terminal; otherwise a line at every tenth of the images."""

    def __init__(self, desc: str, total: int):
        self.desc, self.total, self.done, self.next_line = desc, total, 0, 0.1
        self.started = time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="img", leave=False, dynamic_ncols=True)
        else:
            _say(f"{desc}: {total} images into the image cache")

    def update(self, count: int) -> None:
        self.done += count
        if self.bar is not None:
            self.bar.update(count)
        elif self.done >= self.next_line * self.total:
            _say(f"{self.desc}: {self.done}/{self.total} images")
            while self.next_line * self.total <= self.done:
                self.next_line += 0.1

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        seconds = time.perf_counter() - self.started
        _say(f"{self.desc}: {self.total} images decoded in {seconds:.1f} s")
