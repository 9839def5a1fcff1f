"""Embeddings, Chroma, recommender, recommendation log, evaluation (tastebud.retrieval)."""

if not __name__.startswith("tastebud."):  # the folder on sys.path, not the installed package
    raise ImportError(f"import tastebud.retrieval, not {__name__}: the folders install under the tastebud namespace")
