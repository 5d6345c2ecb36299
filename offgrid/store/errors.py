"""What the store refuses; the server turns each into its HTTP status."""


class StoreError(Exception):
    pass


class InvalidValue(StoreError):
    """A value the store cannot accept; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class Conflict(StoreError):
    """The change contradicts what is stored: a taken username, the last admin."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


class Missing(StoreError):
    """No such user or key."""


class Expired(StoreError):
    """A login token past its expiry."""


class Unavailable(StoreError):
    """The database cannot be reached (a PostgreSQL server down or refusing us)."""
