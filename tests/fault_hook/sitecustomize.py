"""Test-only fault injection, loaded by Python at start-up when this folder is on PYTHONPATH.

`ALEXNET_TEST_FAULT=ENOSPC:R` makes every fsync of a file under the folder `R`
(relative to the working directory) fail with "No space left on device", as a
full disk does when written data reaches it; `EROFS:R` makes creating, opening
for writing or renaming anything under `R` fail with "Read-only file system".
An optional third field `:N` lets the first N such operations succeed.
The training process itself runs unchanged; only these OS calls are wrapped.
"""

import builtins
import errno
import io
import os

_spec = os.environ.get("ALEXNET_TEST_FAULT", "")
if _spec:
    _name, _folder, *_rest = _spec.split(":")
    _code = getattr(errno, _name)
    _root = os.path.abspath(_folder)
    _allowed = [int(_rest[0]) if _rest else 0]

    def _inside(path):
        try:
            path = os.path.abspath(os.fsdecode(path))
        except TypeError:
            return False
        return path == _root or path.startswith(_root + os.sep)

    def _fail(path):
        if _allowed[0] > 0:
            _allowed[0] -= 1
            return
        raise OSError(_code, os.strerror(_code), os.fsdecode(path))

    if _code == errno.ENOSPC:
        _fsync = os.fsync

        def fsync(fd):
            fileno = fd if isinstance(fd, int) else fd.fileno()
            try:
                path = os.readlink(f"/proc/self/fd/{fileno}")
            except OSError:
                path = ""
            if path and _inside(path) and not os.path.isdir(path):
                _fail(path)
            return _fsync(fd)

        os.fsync = fsync
    else:
        _open, _mkdir, _replace = io.open, os.mkdir, os.replace

        def open_(file, mode="r", *args, **kwargs):
            if not isinstance(file, int) and any(c in mode for c in "wax+") and _inside(file):
                _fail(file)
            return _open(file, mode, *args, **kwargs)

        def mkdir(path, *args, **kwargs):
            if _inside(path):
                _fail(path)
            return _mkdir(path, *args, **kwargs)

        def replace(src, dst, *args, **kwargs):
            if _inside(dst):
                _fail(dst)
            return _replace(src, dst, *args, **kwargs)

        builtins.open = io.open = open_
        os.mkdir, os.replace = mkdir, replace
