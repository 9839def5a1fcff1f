"""Reuse a server recorded in ``TASTEBUD_HOME/llm-server.json`` instead of starting one.

The record holds pid, base URL, API key, model path, model sha256 and alias.
tastebud itself never writes it (it never leaves a server running behind a
process); the test suite's ``attach_embedded`` fixture does, so a tastebud
process started on a test home reuses the session's model server.
``find_running`` accepts a record only when the pid is alive, the model and
alias match and ``/v1/models`` answers with that alias.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tastebud.embedded.model import MODEL_SHA256
from tastebud.embedded.server import pid_alive

STATE_FILENAME = "llm-server.json"


@dataclass(frozen=True)
class RunningServer:
    pid: int
    base_url: str
    api_key: str
    model_path: str
    sha256: str
    alias: str


def find_running(settings: Any, model_path: Path | None = None) -> RunningServer | None:
    """A recorded server under TASTEBUD_HOME that is alive and serves our model."""
    import httpx

    path = Path(settings.home) / STATE_FILENAME
    try:
        state = RunningServer(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    if not pid_alive(state.pid) or state.sha256 != MODEL_SHA256 or state.alias != settings.llm_model:
        return None
    if model_path is not None and Path(state.model_path).resolve() != Path(model_path).resolve():
        return None
    try:
        r = httpx.get(f"{state.base_url}/models", headers={"Authorization": f"Bearer {state.api_key}"}, timeout=2.0)
        ids = [m.get("id") for m in r.json().get("data", [])] if r.status_code == 200 else []
    except (httpx.HTTPError, ValueError):
        return None
    return state if state.alias in ids else None
