"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every writer goes to a temporary file in the destination folder (same file
system), flushes it to disk, then ``os.replace``-s it onto the final name,
which POSIX and Windows both make atomic. A process killed mid-write leaves
at most a ``.tmp-*`` file behind, never a truncated output.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, Union

PathLike = Union[str, os.PathLike]
TMP_PREFIX = ".tmp-"


def public_mode() -> int:
    """0666 minus the process umask (what a plain ``open()`` would create)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_dir(folder: PathLike) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, on error it is removed.

    For writers that want a file name (SimpleITK, safetensors, ``np.savez``).
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(out.suffixes[-2:]) if out.name.endswith(".gz") else out.suffix
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix, dir=out.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, public_mode())  # mkstemp makes 0600; outputs are for sharing
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: PathLike, obj: Any, **dumps_kwargs: Any) -> Path:
    """``json.dumps(obj, **dumps_kwargs)`` to ``path`` atomically (indent 2 unless given)."""
    dumps_kwargs.setdefault("indent", 2)
    return atomic_write_text(path, json.dumps(obj, **dumps_kwargs))


def atomic_write_csv(path: PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """A CSV with a header row and ``rows`` (sequences, or dicts keyed by the header), atomically."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(list(header))
    for row in rows:
        writer.writerow([row.get(k, "") for k in header] if isinstance(row, dict) else list(row))
    return atomic_write_text(path, buf.getvalue())
