"""The chat agent: tools, roles, routing, grounded answers, sessions (tastebud.agent)."""

if not __name__.startswith("tastebud."):  # the folder on sys.path, not the installed package
    raise ImportError(f"import tastebud.agent, not {__name__}: the folders install under the tastebud namespace")
