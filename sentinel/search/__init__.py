"""Search: event and incident documents built from facts, their embeddings and index."""
