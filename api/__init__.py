"""The HTTP interface: `tastebud serve` (FastAPI under uvicorn).

An interface layer like `cli/`: it imports agent/, retrieval/, profiles/ and
tastebud/, and only `cli/serve.py` imports it. Modules that the CLI needs
without a server (`api.keys`) import no web framework.
"""
