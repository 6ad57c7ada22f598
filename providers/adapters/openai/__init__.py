"""OpenAI's wire formats, which most of the catalog speaks: the compatible chat adapter, its answers, errors and
reasoning quirks, the legacy text completions, images, audio, video, embeddings and moderations, and Azure OpenAI."""
