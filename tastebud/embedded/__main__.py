"""The server child: ``python -m tastebud.embedded [--parent-pid N] [--no-extra-bufts] -- <llama_cpp.server args>``.

Runs llama_cpp.server with the patches of ``patches.py`` and, with
``--parent-pid``, a watchdog that exits when the parent is gone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

from tastebud.embedded.patches import LlamaPatches, omp_passive
from tastebud.embedded.server import pid_alive


def _watch_parent(pid: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != pid or not pid_alive(pid):
            os._exit(0)


def main(argv: list[str]) -> None:
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
    omp_passive()
    LlamaPatches(extra_bufts).__enter__()
    # SIGTERM -> clean exit (uvicorn handles it too; this covers model loading)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    from llama_cpp.server.__main__ import main as serve

    sys.argv = ["llama_cpp.server", *argv]
    serve()


if __name__ == "__main__":
    main(sys.argv[1:])
