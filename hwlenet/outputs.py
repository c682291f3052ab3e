"""Writing output files safely: checked before the work starts, written whole or not at all.

Every file hwlenet writes goes first to a temporary file in the same folder (``.NAME.XXXX.part``),
which is then renamed onto the target. A run that fails or is interrupted (Ctrl-C) therefore
leaves either the previous file or the new one, never a half-written one, and no temporary file.
"""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import HwlenetError

__all__ = ["atomic_path", "check_writable", "write_bytes", "write_json", "write_text"]


def _label(path, option):
    return f"{option} {path}" if option else str(path)


def check_writable(path, option=None, directory=False):
    """Check, before any long work, that ``path`` can be written.

    Parameters
    ----------
    path : path-like
        The file (or, with ``directory``, the folder) to be written.
    option : str, optional
        The command-line option that named it, quoted in the message.
    directory : bool
        ``path`` is a folder, created with its missing parents; else a file whose folder must
        exist.

    Raises
    ------
    HwlenetError
        Naming the option and the path, when the path is an existing folder (for a file) or
        file (for a folder), its folder is missing or not a folder, or it is not writable.
    """
    path = Path(path)
    label = _label(path, option)
    if directory:
        if path.exists() and not path.is_dir():
            raise HwlenetError(f"{label}: exists and is not a folder")
        ancestor = path
        while not ancestor.exists():
            if ancestor.parent == ancestor:
                break
            ancestor = ancestor.parent
        if not ancestor.is_dir():
            raise HwlenetError(f"{label}: {ancestor} is not a folder")
        if not os.access(ancestor, os.W_OK | os.X_OK):
            raise HwlenetError(f"{label}: {ancestor} is not writable")
        return
    if path.is_dir():
        raise HwlenetError(f"{label}: is a folder, not a file")
    folder = path.parent
    if not folder.exists():
        raise HwlenetError(f"{label}: folder {folder} does not exist")
    if not folder.is_dir():
        raise HwlenetError(f"{label}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists()
                                                   and not os.access(path, os.W_OK)):
        raise HwlenetError(f"{label}: not writable")


@contextmanager
def atomic_path(path, option=None):
    """A temporary path beside ``path`` to write to; renamed onto ``path`` when the block ends
    normally, removed when it raises (or is interrupted).

    Raises
    ------
    HwlenetError
        When the temporary file cannot be created or renamed.
    """
    path = Path(path)
    try:
        descriptor, temporary = tempfile.mkstemp(dir=path.parent or ".",
                                                 prefix=f".{path.name}.", suffix=".part")
    except OSError as error:
        raise HwlenetError(f"cannot write {_label(path, option)}: {error.strerror}") from None
    os.close(descriptor)
    temporary = Path(temporary)
    try:
        os.chmod(temporary, _file_mode(path))
        yield temporary
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise HwlenetError(f"cannot write {_label(path, option)}: {error.strerror}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _file_mode(path):
    """The mode a plainly created file would get: the existing file's, else 0o666 less the
    umask (a temporary file starts as 0o600)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_bytes(path, payload, option=None):
    """Write ``payload`` to ``path`` whole or not at all."""
    with atomic_path(path, option) as temporary:
        temporary.write_bytes(payload)


def write_text(path, text, option=None):
    """Write ``text`` (UTF-8) to ``path`` whole or not at all."""
    write_bytes(path, text.encode("utf-8"), option)


def write_json(path, payload, option=None):
    """Write ``payload`` as indented, key-sorted JSON (deterministic bytes) when ``path`` is
    given."""
    if path:
        write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n", option)
