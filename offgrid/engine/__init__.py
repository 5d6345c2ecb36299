"""Everything that touches llama.cpp: models, the batching scheduler, sampling, embeddings."""
