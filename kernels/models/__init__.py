"""Target models: names without torch (catalog), builders (architectures), the trained state (training,
keyed by recipe)."""
