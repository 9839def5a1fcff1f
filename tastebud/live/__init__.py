"""Live-update workers (docs/design.md#live-updates): the computed refresh
after events, background narratives and the item-side rebuild, behind one
facade, `LiveUpdates`. No HTTP here: `tastebud serve`, a CLI daemon or a test
runs them with any `LiveServices` (the composition root `tastebud.app.App`)."""

from tastebud.live.ports import LiveServices
from tastebud.live.updates import LiveUpdates

__all__ = ["LiveServices", "LiveUpdates"]
