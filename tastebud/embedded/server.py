"""llama-cpp-python's OpenAI-compatible server as a child process on a loopback port.

The embedded model is reached through exactly the same HTTP client as vLLM.
Every process that needs the model starts its own server and stops it at exit:
``stop()``/the context manager, an atexit hook over every live server, and a
watchdog in the child (``python -m tastebud.embedded --parent-pid N``, see
``__main__.py``) so a SIGKILLed parent never leaves a 500 MB orphan on a shared box.
"""

from __future__ import annotations

import atexit
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tastebud.embedded.model import INSTALL_HINT
from tastebud.embedded.patches import extra_bufts_enabled
from tastebud.errors import ModelError

CHAT_FORMAT = "chatml-function-calling"
# env vars llama_cpp.server's pydantic settings would read unprefixed
_SERVER_ENV_KEYS = {"CONFIG_FILE", "API_KEY", "MODEL", "HOST", "PORT", "N_CTX", "CHAT_FORMAT", "VERBOSE"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def thread_count(n: int) -> int:
    """llama.cpp threads for a setting where 0 (or less) means all cores."""
    return n if n and n > 0 else (os.cpu_count() or 1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
    pid: int | None = None
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _owned_log: bool = field(default=False, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def command(self) -> list[str]:
        threads = thread_count(self.n_threads)
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
        wrapper = [sys.executable, "-m", "tastebud.embedded", "--parent-pid", str(os.getpid())]
        if not extra_bufts_enabled():
            wrapper += ["--no-extra-bufts"]
        return [*wrapper, "--", *args]

    # lifecycle ----------------------------------------------------------
    def start(self, timeout: float = 180.0) -> "EmbeddedServer":
        if self.alive():
            return self
        # fail here, clearly, not in the child; find_spec does not import
        # llama_cpp (which would load libgomp in this process, see patches.omp_passive)
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
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see patches.omp_passive
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


def server_for(settings: Any, model_path: Path) -> EmbeddedServer:
    """The server these settings ask for (not started)."""
    return EmbeddedServer(
        model_path=model_path,
        alias=settings.llm_model,
        port=settings.llm_port,
        n_ctx=settings.llm_context,
        n_threads=settings.llm_threads,
    )
