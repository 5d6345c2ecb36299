"""The knowledge base: documents turned into text and chunks (ingest.py, chunking.py), searched,
and cited in answers. No HTTP here (server/routes/kb.py) and no SQL (store/kb.py)."""
