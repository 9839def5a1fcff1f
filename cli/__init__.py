"""Typer commands and Rich rendering (tastebud.cli); no business logic."""

if not __name__.startswith("tastebud."):  # the folder on sys.path, not the installed package
    raise ImportError(f"import tastebud.cli, not {__name__}: the folders install under the tastebud namespace")
