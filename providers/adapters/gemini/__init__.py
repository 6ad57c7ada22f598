"""Google Gemini (generateContent) and its media APIs (Imagen, Veo, TTS, embeddings): the adapter and its modules."""
