"""Write a file so that readers see the old version or the new one, never half of one.

Every artifact kpv leaves in an output folder or the cache goes through here
(console.log and build.log excepted: they are streams, written as the bytes
arrive so that an interruption keeps them, and every prefix of them is valid).
A write that fails, for want of space or otherwise, leaves no temporary file.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


@contextmanager
def open_new(path: Path, mode: int = 0o666) -> Iterator[BinaryIO]:
    """A file to write `path`'s new content into; it becomes `path` when the block ends.
    mode: its permissions before the umask (0o777 for a script)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    except OSError as e:
        raise _naming(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        # mkstemp makes 0600; results are for CI artifact collectors and other users too.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, mode & ~umask)
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        raise _naming(e, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _naming(e: OSError, path: Path) -> OSError:
    """The error with the file the caller asked for, not the temporary one (or none)."""
    if e.filename and Path(e.filename).parent != path.parent:
        return e  # a file of the caller's own, read inside the block
    return type(e)(e.errno, e.strerror, str(path))


def write(path: Path, data: bytes, mode: int = 0o666) -> None:
    with open_new(path, mode) as f:
        f.write(data)


def copy(src: Path, dest: Path) -> None:
    """Copy src to dest: a copy cut short (a full disk) leaves dest as it was."""
    with open(src, "rb") as f, open_new(dest) as out:
        shutil.copyfileobj(f, out)
