"""fal.ai: the adapter and its queue API."""
