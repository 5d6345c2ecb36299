"""One reader per file format: each turns a document's text (or bytes, for PDF and DOCX) into
blocks on a document.Builder."""
