"""Anthropic's Messages API: the adapter, its request and answer translation, thinking blocks and errors."""
