"""The HTTP interface: `tastebud serve` (FastAPI under uvicorn).

An interface layer like `cli/`: it imports agent/, retrieval/, profiles/ and
tastebud/, and only `cli/serve.py` imports it. Modules that the CLI needs
without a server (`tastebud.api.keys`) import no web framework.
"""

if not __name__.startswith("tastebud."):  # the folder on sys.path, not the installed package
    raise ImportError(f"import tastebud.api, not {__name__}: the folders install under the tastebud namespace")
