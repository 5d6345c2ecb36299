"""The migration runner: each migration runs once, in order, recorded by name; one that fails
leaves nothing of itself behind, and runs again next time while those before it stay.
tests/unit/test_schema.py checks the schema the shipped migrations build."""

import sqlite3

import pytest

from offgrid.store.db import Database, migrate


def recorded(path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT name FROM migrations ORDER BY rowid")]


def test_migrations_run_once_each_and_are_recorded(tmp_path):
    ran = []

    def m001_first(connection):
        ran.append(1)
        connection.execute("CREATE TABLE things (name TEXT)")

    def m002_second(connection):
        ran.append(2)
        connection.execute("ALTER TABLE things ADD COLUMN size INTEGER")

    Database(tmp_path / "test.db", [m001_first])
    Database(tmp_path / "test.db", [m001_first])
    db = Database(tmp_path / "test.db", [m001_first, m002_second])
    assert ran == [1, 2]
    assert [row["name"] for row in db.read("SELECT name FROM migrations ORDER BY rowid")] == [
        "m001_first", "m002_second"]
    assert db.read_one("PRAGMA journal_mode")[0] == "wal"


def test_a_failed_migration_leaves_nothing_behind(tmp_path):
    def m001_broken(connection):
        connection.execute("CREATE TABLE half (name TEXT)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        Database(tmp_path / "test.db", [m001_broken])
    with sqlite3.connect(tmp_path / "test.db") as db:
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None


def test_a_failed_migration_runs_again_after_those_before_it_stay(tmp_path):
    path, ran = tmp_path / "test.db", []

    def m001_first(connection):
        ran.append(1)
        connection.execute("CREATE TABLE things (name TEXT)")

    def m002_flaky(connection):
        ran.append(2)
        connection.execute("INSERT INTO things VALUES ('half')")
        if ran.count(2) == 1:
            raise RuntimeError("boom")

    def m003_last(connection):
        ran.append(3)

    with pytest.raises(RuntimeError):
        Database(path, [m001_first, m002_flaky, m003_last])
    assert recorded(path) == ["m001_first"] and ran == [1, 2]
    Database(path, [m001_first, m002_flaky, m003_last])
    assert ran == [1, 2, 2, 3]
    assert recorded(path) == ["m001_first", "m002_flaky", "m003_last"]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT name FROM things").fetchall() == [("half",)]


def test_a_migration_is_known_by_its_name_wherever_it_stands(tmp_path):
    ran = []

    def m001_tables(connection):
        ran.append("tables")
        connection.execute("CREATE TABLE a (x)")

    def m002_more(connection):
        ran.append("more")
        connection.execute("CREATE TABLE b (x)")

    connection = sqlite3.connect(tmp_path / "test.db", isolation_level=None)
    migrate(connection, [m001_tables])
    migrate(connection, [m002_more, m001_tables])  # m001_tables would fail if it ran again
    assert ran == ["tables", "more"]
    assert recorded(tmp_path / "test.db") == ["m001_tables", "m002_more"]
