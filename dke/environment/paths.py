"""Which files an environment may make dke read: the spec-file path rule.

`dke lint` runs in CI on untrusted pull requests, so a path written in an environment
(or overlay) must not make dke read, and then quote in a diagnostic, a file outside
the project (`worker_spec_file: /etc/shadow`). The rule, as docs/configuration.md states it:

- the path is relative to the file that names it (the environment or the overlay);
- resolved, symlinks included, it stays inside that file's directory tree;
- it is a regular file (not a directory, device, FIFO or socket) of at most MAX_SPEC_BYTES.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath, PureWindowsPath

MAX_SPEC_BYTES = 1024 * 1024  # a Pod spec is a few KiB; Kubernetes objects stop at ~1.5 MiB


def resolve_spec_path(environment_dir: Path, name: str) -> tuple[Path | None, str | None]:
    """``environment_dir / name`` if the rule above allows reading it, else (None, a one-line reason).

    The path returned is not resolved (diagnostics show it as written); the checks are
    made on the resolved one.
    """
    shown = repr(name)
    if not name or not name.strip():
        return None, "the spec file path is empty"
    if "\0" in name:
        return None, f"spec file path {name!r} contains a NUL character"
    if (
        PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).is_absolute()
        or PureWindowsPath(name).drive
    ):
        return None, (
            f"spec file {shown} is an absolute path; write it relative to the file that names it "
            "(spec files must be inside its directory)"
        )
    candidate = Path(environment_dir) / name
    try:
        root = Path(environment_dir).resolve()
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as e:  # a symlink loop
        return None, f"spec file {shown} cannot be resolved ({getattr(e, 'strerror', None) or e})"
    if not resolved.is_relative_to(root):
        how = "is a symlink that leads" if _any_symlink(Path(environment_dir), name) else "leads"
        return None, (
            f"spec file {shown} {how} outside the directory of the file that names it; "
            "keep spec files inside that directory"
        )
    try:
        info = os.stat(resolved)
    except FileNotFoundError:
        return None, (
            f"spec file {str(candidate)!r} not found; paths are relative to the file that names them"
        )
    except OSError as e:
        return None, f"spec file {shown} cannot be read: {e.strerror}"
    if stat.S_ISDIR(info.st_mode):
        return None, f"spec file {shown} is a directory; name a YAML file"
    if not stat.S_ISREG(info.st_mode):
        return None, f"spec file {shown} is not a regular file (a device, FIFO or socket); name a YAML file"
    if info.st_size > MAX_SPEC_BYTES:
        return None, (
            f"spec file {shown} is {info.st_size} bytes, over the {MAX_SPEC_BYTES // 1024} KiB "
            "a spec file may have; is it the right file?"
        )
    return candidate, None


def _any_symlink(base: Path, name: str) -> bool:
    """Whether a component of ``name`` under ``base`` is a symlink (for the wording only)."""
    path = base
    for part in PurePosixPath(name).parts:
        path = path / part
        if path.is_symlink():
            return True
    return False
