"""What the knowledge base refuses about a document, in words its uploader understands; the
server maps each class to an HTTP status (noted on each)."""

SUPPORTED = ("plain text (.txt), Markdown (.md), HTML (.html), PDF (.pdf), Word (.docx), "
             "CSV (.csv, .tsv), JSON (.json) and source code or config files (.py, .js, .ts, "
             ".go, .rs, .c, .java, .sh, .toml, .yaml, .sql and others)")


class KbError(Exception):
    """Base of everything the knowledge base refuses."""


class UnsupportedType(KbError):
    """Not a kind of file the knowledge base reads (415)."""

    def __init__(self, what: str, name: str):
        super().__init__(f"{name!r} is {what}, which the knowledge base cannot read. "
                         f"Supported: {SUPPORTED}")
        self.what = what
        self.name = name


class EmptyDocument(KbError):
    """No text left after extraction: an empty file, whitespace only, a PDF of scanned images
    (400)."""

    def __init__(self, name: str, hint: str = ""):
        super().__init__(f"{name!r} holds no text to add to the knowledge base{hint}")
        self.name = name


class DocumentTooLarge(KbError):
    """More text, pages, blocks or work than one document may take (413)."""

    def __init__(self, name: str, what: str):
        super().__init__(f"{name!r} is too large for the knowledge base: {what}. "
                         "Split it into smaller documents")
        self.name = name


class UnreadableDocument(KbError):
    """A supported type whose content is broken, encrypted or hostile: a truncated PDF, a
    password-protected one, a .docx that is not a Word file, XML with a DTD (400)."""

    def __init__(self, name: str, why: str):
        super().__init__(f"{name!r} cannot be read: {why}")
        self.name = name
        self.why = why


class KnowledgeBaseOff(KbError):
    """The knowledge base is off, or has no embedding model to work with (409)."""

    def __init__(self, embedding_models: list[str]):
        hint = ("turn it on with POST /v1/rag/enable" if embedding_models else
                "put an embedding model (a .gguf of a BERT-family model such as all-MiniLM-L6-v2;"
                " `offgrid convert` makes one) in the models folder")
        super().__init__(f"The knowledge base is off: {hint}")


class NoEmbeddingModel(KbError):
    """No such embedding model in the models folder (404)."""

    def __init__(self, model: str | None, embedding_models: list[str]):
        there = ", ".join(embedding_models) or "none"
        super().__init__(f"{model!r} is not an embedding model in the models folder "
                         f"(there: {there})" if model else
                         f"Name one of the embedding models in the models folder: {there}")


class DocumentNotFound(KbError):
    """No such document, or chunk of it, that the caller may see (404)."""

    def __init__(self, document_id: int, position: int | None = None):
        super().__init__(f"No document {document_id}" if position is None else
                         f"Document {document_id} has no chunk {position}")
