"""Model files: turning a Hugging Face model into GGUF (convert.py)."""
