"""Events, catalog, event store, ingestion, interest model, narratives, versions, refresh (tastebud.profiles)."""

if not __name__.startswith("tastebud."):  # the folder on sys.path, not the installed package
    raise ImportError(f"import tastebud.profiles, not {__name__}: the folders install under the tastebud namespace")
