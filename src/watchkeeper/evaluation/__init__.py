"""Windows, their evaluation against the reference, and the metric points it produces."""
