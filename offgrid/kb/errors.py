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
