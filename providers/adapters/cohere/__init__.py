"""Cohere's v2 API: chat (the adapter) and embed."""
