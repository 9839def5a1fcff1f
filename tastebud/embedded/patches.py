"""Process-local fixes for llama.cpp / llama-cpp-python, applied before a model is built.

Used by the server child (``python -m tastebud.embedded``) and by the raw
llama-cpp baseline of the benches (bench/_llama_baseline.py), so both run the
model the same way.

CPU quirk: AMX. A llama.cpp built with GGML_NATIVE on a CPU that advertises
AMX puts Q4_K weights in its AMX buffer type; on VMs that advertise AMX without
really enabling it (Firecracker here) the first ``ldtilecfg`` dies with a
general protection fault (SIGSEGV, no Python traceback). Turning off
llama.cpp's "extra buffer types" (AMX and weight repacking) avoids that code
path. TASTEBUD_LLM_EXTRA_BUFTS=1/0 forces it on/off; default: off when the CPU
advertises AMX, on otherwise.
"""

from __future__ import annotations

import os
import sys
from typing import Any


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


class LlamaPatches:
    """Process-local fixes applied before llama_cpp builds a model.

    * extra buffer types off (see the module docstring) when ``extra_bufts`` is False;
    * no HTML escaping in chatml-function-calling: its Jinja template is built
      with ``select_autoescape``, which escapes every message, so
      "Fast & Furious" reached the model as "Fast &amp; Furious", came back
      that way in answers (breaking title grounding) and quotes in JSON
      prompts became ``&#34;`` (52 -> 71 prompt tokens in one test).
    """

    def __init__(self, extra_bufts: bool):
        self.extra_bufts = extra_bufts

    def __enter__(self) -> "LlamaPatches":
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


def omp_passive() -> None:
    """llama.cpp's OpenMP threads spin while they wait. When another process
    holds a core (2 shared cores here), n_threads=2 with spinning fell from
    14 to 1.7 tokens/s; OMP_WAIT_POLICY=PASSIVE kept 14. libgomp reads it
    once, when it loads, so this must run before llama_cpp is imported."""
    if "OMP_WAIT_POLICY" not in os.environ and "llama_cpp" in sys.modules:
        import warnings

        warnings.warn("llama_cpp was imported before OMP_WAIT_POLICY was set: its threads will spin "
                      "(slow when cores are shared); set OMP_WAIT_POLICY=PASSIVE first", stacklevel=3)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
