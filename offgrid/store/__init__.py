"""OffGrid's database: every line of SQL in the project lives in this package."""
