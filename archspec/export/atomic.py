"""Atomic file output: write to a temporary name in the target folder, move it into place only
when complete, and remove every temporary file on an exception, Ctrl-C, SIGTERM or SIGHUP."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from archspec.errors import ExportError

_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


@contextmanager
def signals_raise() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise SystemExit(128 + signal) instead of killing the
    process at once, so `finally` blocks run. (SIGINT already raises KeyboardInterrupt; nothing
    can clean up after SIGKILL.) Only the main thread can set handlers; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, handler) for sig in _SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextmanager
def noting_ctrl_c() -> Iterator[list[bool]]:
    """SIGINT raises KeyboardInterrupt as usual and is also noted (the list becomes [True]):
    an exporter that swallows the KeyboardInterrupt and fails otherwise is still seen as
    interrupted. Only the main thread can set handlers; elsewhere nothing is noted."""
    noted: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield noted
        return

    def handler(signum: int, frame: object) -> None:
        noted.append(True)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield noted
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def atomic_path(
    path: str | Path, *, force: bool = False, companions: Sequence[str] = ()
) -> Iterator[Path]:
    """A temporary path next to `path` to write (and check) the file at; on leaving normally it
    becomes `path`. An existing `path` is replaced only with `force` (without it the final step
    is a hard link, so a file that appeared meanwhile is not overwritten either). Any file the
    writer created under the temporary name (e.g. `name.data` beside it) is removed.
    `companions` are suffixes of files the writer puts beside the temporary file (OpenVINO's
    `.bin` beside the `.xml`): they are moved to `path` with that suffix, before `path` itself,
    under the same rules."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a directory; give a file name")
    targets = [path.with_suffix(suffix) for suffix in companions]
    for target in [path, *targets]:
        if target.exists() and not force:
            raise ExportError(f"{target} exists; not overwritten without force")
    with signals_raise():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale(path)
            # hidden, with the real extension (some writers check it) and the writer's pid
            fd, name = tempfile.mkstemp(
                prefix=f"{_temp_prefix(path)}{os.getpid()}.", suffix=path.suffix, dir=path.parent
            )
        except OSError as exc:  # named after the file asked for, not the temporary one
            raise ExportError(f"{path}: cannot write here: {exc.strerror}") from exc
        os.close(fd)
        tmp = Path(name)
        moved: list[Path] = []
        try:
            yield tmp
            for suffix, target in zip(companions, targets, strict=True):
                part = tmp.with_suffix(suffix)
                if not part.exists():
                    raise ExportError(f"{path.name}: the writer left no {suffix} file")
                os.chmod(part, 0o644)
                _move(part, target, force)
                moved.append(target)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; an export is an ordinary file
            _move(tmp, path, force)
            moved.clear()
        finally:
            for target in moved:  # companions of a file that did not arrive
                target.unlink(missing_ok=True)
            for leftover in _named_after(tmp):
                leftover.unlink(missing_ok=True)


def _temp_prefix(path: Path) -> str:
    return f".{path.stem}.archspec-"


def _named_after(tmp: Path) -> list[Path]:
    """The temporary file and what its writer put beside it (`tmp` + anything, or `tmp`'s stem
    with another suffix), by exact name: user paths are never glob patterns."""
    try:
        names = os.listdir(tmp.parent)
    except OSError:
        return []
    return [tmp.parent / n for n in names if n.startswith(tmp.name) or n.startswith(f"{tmp.stem}.")]


def sweep_stale(path: Path) -> list[Path]:
    """Remove what an earlier export to `path` left when it was killed (SIGKILL, power loss):
    temporary files `.STEM.archspec-PID.*` whose writer is no longer running. Another live
    export's files are left alone. Returns what was removed."""
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(path.parent)
    except OSError:
        return []
    removed = []
    for name in names:
        if not name.startswith(prefix):
            continue
        pid = name[len(prefix) :].partition(".")[0]
        if not pid.isdigit() or _alive(int(pid)):
            continue
        stale = path.parent / name
        if stale.is_file() and not stale.is_symlink():
            stale.unlink(missing_ok=True)
            removed.append(stale)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's process: not ours to judge
    return True


def _move(tmp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ExportError(f"{path} exists; not overwritten without force") from None
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise ExportError(f"{path} exists; not overwritten without force") from None
        os.replace(tmp, path)
