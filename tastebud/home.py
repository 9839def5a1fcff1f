"""TASTEBUD_HOME is private: files 0600, folders 0700.

Two halves. `private_umask()` sets the process umask to 077, so whatever is
created under the home from then on (SQLite and its -wal/-shm, Chroma's files,
logs, the assembled model, sessions, tastebud.toml) is owner-only; the
entry points call it (the CLI, each API worker, `App` when it opens the home).
`secure_home(home)` creates the home 0700 and tightens what an older version or
another tool left looser; `open_home(home)` does both and says so in one line.

Kernel module: imports nothing from profiles/retrieval/agent/api/cli.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("tastebud.home")

PRIVATE_UMASK = 0o077
FILE_MODE = 0o600
DIR_MODE = 0o700


def private_umask() -> int:
    """Make files and folders created by this process (and its children) owner-only;
    returns the previous umask. Keeps any stricter bits already set."""
    old = os.umask(PRIVATE_UMASK)
    os.umask(old | PRIVATE_UMASK)
    return old


def _too_broad(home: Path) -> bool:
    """A home that is the user's home directory, or one of its ancestors, is not
    ours to tighten recursively (it would revoke group access to unrelated files)."""
    try:
        resolved = home.resolve()
        user_home = Path.home().resolve()
    except (OSError, RuntimeError):
        return False
    return resolved == user_home or resolved in user_home.parents or resolved == Path(resolved.anchor)


def _tighten(path: str | Path, is_dir: bool) -> bool:
    """chmod one path to owner-only if it grants anything to group or others.
    Never follows a symlink (a linked folder, e.g. a shared models dir, is not ours)."""
    try:
        st = os.lstat(path)
    except OSError:  # removed meanwhile (a temp file of another worker)
        return False
    if stat.S_ISLNK(st.st_mode) or not (stat.S_ISDIR(st.st_mode) if is_dir else stat.S_ISREG(st.st_mode)):
        return False
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o077:
        return False
    try:  # keep the owner's own bits (an executable stays executable for its owner)
        os.chmod(path, (mode & 0o700) | (DIR_MODE if is_dir else FILE_MODE))
    except OSError as exc:  # not ours (another user's file): say so, carry on
        log.debug("cannot tighten %s: %s", path, exc)
        return False
    return True


def secure_home(home: Path | str) -> int:
    """Create `home` 0700 if absent; chmod every file to 0600 and folder to 0700
    under it where looser (group/other bits set). Returns how many paths changed.

    Cheap: one stat per path (the home holds a database, a few logs, a Chroma
    folder of a handful of files, sessions). Symlinks are left alone.
    """
    home = Path(home).expanduser()
    home.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    changed = 0
    try:  # the home itself may be a symlink the user chose: tighten what it names
        if stat.S_IMODE(home.stat().st_mode) & 0o077:
            os.chmod(home, DIR_MODE)
            changed += 1
    except OSError as exc:
        log.debug("cannot tighten %s: %s", home, exc)
    if _too_broad(home):
        log.warning("not tightening permissions under %s: it is the user's home directory or above it; "
                    "set TASTEBUD_HOME to a folder of its own", home)
        return changed
    for root, dirs, files in os.walk(home, followlinks=False):
        for name in dirs:
            changed += _tighten(os.path.join(root, name), is_dir=True)
        for name in files:
            changed += _tighten(os.path.join(root, name), is_dir=False)
    return changed


def open_home(home: Path | str) -> Path:
    """private_umask() + secure_home(home), with one WARNING line when anything
    was tightened. Returns the home."""
    private_umask()
    home = Path(home).expanduser()
    changed = secure_home(home)
    if changed:
        log.warning("tightened permissions of %d path%s under %s to owner-only",
                    changed, "" if changed == 1 else "s", home)
    return home
