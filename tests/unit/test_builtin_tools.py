"""The agents' built-in tools, called as the agent loop calls them: arguments as a model might
write them (hostile ones included), a real workspace folder, real programs, a real HTTP server
on loopback and a real knowledge base with the test embedding model. Each refusal is an error
result the model can read, never an exception, and nothing refused has run."""

from __future__ import annotations

import ast
import builtins
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote
from zoneinfo import ZoneInfo

import pytest

from offgrid.agents.builtin import builtin_tools, workspace_folder
from offgrid.agents.builtin.files import MAX_LISTED, MAX_READ_BYTES, MAX_WRITE_BYTES
from offgrid.agents.builtin.http_get import MAX_BODY_BYTES, refusal
from offgrid.agents.builtin.shell import MAX_OUTPUT_BYTES
from offgrid.agents.tools import ToolContext, ToolResult
from offgrid.config import Settings
from offgrid.engine import grammar
from offgrid.engine.registry import Registry
from offgrid.kb.knowledge_base import KnowledgeBase, Reader
from offgrid.store import users
from offgrid.store.db import Database
from support.cli import child_env
from support.waiting import wait_until

ALL = builtin_tools(Settings())
TOOLS = {tool.name: tool for tool in ALL}


def call(name: str, workspace: Path | None = None, tools: dict = TOOLS, **arguments
         ) -> ToolResult:
    return tools[name].call(arguments, ToolContext(workspace or Path("/nonexistent"), None))


def refused(result: ToolResult, *words: str) -> str:
    assert result.is_error, result
    assert "Traceback" not in result.text
    for word in words:
        assert word in result.text, result.text
    return result.text


# -- the set ------------------------------------------------------------------------------------

def test_every_tool_has_a_schema_the_agents_grammar_enforces():
    assert [t.name for t in ALL] == ["calculator", "current_time", "read_file", "write_file",
                                     "list_files", "http_get", "shell"]  # no kb: no kb_search
    for tool in ALL:
        schema = tool.parameters
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert set(schema.get("required", [])) <= set(schema["properties"])
        grammar.json_schema(schema)  # SchemaError if it could not be enforced
        assert tool.describe() == {"name": tool.name, "description": tool.description,
                                   "parameters": schema}
        json.dumps(tool.describe())


def test_only_http_get_and_shell_are_off_and_an_admins_to_turn_on():
    off = {t.name for t in ALL if not t.enabled_by_default}
    assert off == {t.name for t in ALL if t.admins_only} == {"http_get", "shell"}
    assert "not a sandbox" in TOOLS["shell"].description


def test_arguments_are_checked_whatever_the_grammar_did():
    refused(TOOLS["calculator"].call(["1+1"], ToolContext(Path("/x"), None)), "JSON object")
    refused(call("calculator", expression="1", extra=2), "no argument 'extra'")
    refused(call("calculator"), "'expression' is missing")
    refused(call("calculator", expression=7), "must be a string")
    refused(call("read_file", path="x" * 2000), "characters long")


def test_each_user_has_a_workspace_in_multi_user_mode(tmp_path):
    assert workspace_folder(Settings(home=tmp_path), 3) == tmp_path / "workspace"
    multi = Settings(home=tmp_path, multi_user=True)
    assert workspace_folder(multi, 3) == tmp_path / "workspace" / "user-3"
    assert workspace_folder(multi, None) == tmp_path / "workspace" / "guests"


# -- calculator ---------------------------------------------------------------------------------

@pytest.mark.parametrize("expression, value", [
    ("1 + 2 * 3", 7), ("(17 * 23) + 4", 395), ("2 ** 10", 1024), ("7 // 2", 3), ("-7 % 3", 2),
    ("10 / 4", 2.5), ("-(3 - 5)", 2), ("sqrt(16) + abs(-2)", 6.0), ("round(pi, 2)", 3.14),
    ("round(2.5)", 2), ("log(8, 2)", 3.0), ("log10(1000)", 3.0), ("max(1, 9, 3) - min(4, 2)", 7),
    ("floor(2.7) + ceil(2.1)", 5), ("factorial(20)", 2432902008176640000), ("1e3 + 0.5", 1000.5),
    ("cos(0) + sin(0)", 1.0), ("exp(0)", 1.0), ("2 ** -1", 0.5), ("1_000 * 3", 3000),
])
def test_the_calculator_works_out_arithmetic(expression, value):
    result = call("calculator", expression=expression)
    assert not result.is_error, result
    assert result.text == f"{expression} = {value!r}"


def test_big_whole_numbers_are_exact_up_to_the_bound():
    assert call("calculator", expression="factorial(1000)").text.endswith("0" * 249)
    assert call("calculator", expression="2 ** 9999").text.endswith(str(2 ** 9999))


HOSTILE = [
    "__import__('os').system('touch MARKER')",
    "open('MARKER', 'w')",
    "exec(\"open('MARKER', 'w')\")",
    "eval(\"open('MARKER', 'w')\")",
    "(1).__class__.__bases__[0].__subclasses__()",
    "().__class__",
    "[].__class__.__mro__",
    "(lambda: open('MARKER', 'w'))()",
    "[open('MARKER', 'w') for x in (1,)]",
    "{'a': 1}",
    "'a' * 10",
    "b'MARKER'",
    "f'{open(\"MARKER\", \"w\")}'",
    "x",
    "pi.real",
    "sqrt.__globals__",
    "sqrt(x=4)",
    "(y := 3)",
    "1 if open('MARKER', 'w') else 2",
    "1 < 2",
    "True + 1",
    "2j",
    "2 ^ 8",
    "1; open('MARKER', 'w')",
    "import os",
    "1 + 2\x00",
]


@pytest.mark.parametrize("expression", HOSTILE)
def test_a_hostile_expression_is_refused_without_running_anything(expression, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)
    real_compile = builtins.compile

    def syntax_trees_only(source, filename, mode, flags=0, *args, **kwargs):
        assert flags & ast.PyCF_ONLY_AST, "the calculator compiled text to code"
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def never(*args, **kwargs):
        raise AssertionError("the calculator called eval or exec")

    monkeypatch.setattr(builtins, "compile", syntax_trees_only)
    monkeypatch.setattr(builtins, "eval", never)
    monkeypatch.setattr(builtins, "exec", never)
    refused(call("calculator", expression=expression))
    assert not (tmp_path / "MARKER").exists()


@pytest.mark.parametrize("expression, why", [
    ("9 ** 9 ** 9", "369,693,099 digits"), ("10 ** 100000", "100,000 digits"),
    ("2 ** 10001", "digits"), ("(10 ** 3000) * (10 ** 3000)", "digits"),
    ("factorial(10 ** 6)", "factorial takes a whole number from 0 to 1000"),
    ("factorial(1001)", "from 0 to 1000"), ("factorial(2.5)", "whole number"),
    ("round(5, -10 ** 100)", "digits must be"), ("1e308 * 10", "too large"),
    ("exp(1000)", "too large"), ("1.5 ** (10 ** 300)", "too large"),
    ("(-8) ** 0.5", "not a real number"), ("1 / 0", "Division by zero"), ("5 % 0", "zero"),
    ("sqrt(-1)", "Not defined"), ("log(0)", "Not defined"),
    ("-" * 60 + "1", "nests more than"), ("+".join(["1"] * 240), "characters long"),
    ("1" * 201, "most is 200"), ("", "empty"), ("2 +", "Not an arithmetic expression"),
    ("sqrt(1, 2)", "sqrt takes 1 argument, not 2"), ("nosuch(1)", "Unknown function"),
])
def test_what_would_run_away_or_is_undefined_is_refused_before_it_is_worked_out(expression, why):
    refused(call("calculator", expression=expression), why)


# -- current_time -------------------------------------------------------------------------------

def test_the_time_is_now_with_its_weekday():
    before = datetime.now().astimezone()
    text = call("current_time").text
    moment = datetime.fromisoformat(text.split(",")[0])
    assert moment.tzinfo is not None
    assert abs((moment - before).total_seconds()) < 120
    assert f"{moment:%A}" in text and "this machine's time zone" in text


@pytest.mark.parametrize("zone", ["Europe/Paris", "America/New_York", "Asia/Kolkata", "UTC"])
def test_the_time_in_a_named_zone(zone):
    result = call("current_time", timezone=zone)
    assert not result.is_error, result
    moment = datetime.fromisoformat(result.text.split(",")[0])
    assert moment.utcoffset() == moment.astimezone(ZoneInfo(zone)).utcoffset()
    assert f"{moment:%A}" in result.text and zone in result.text


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "../../etc/passwd", "/etc/localtime"])
def test_an_unknown_zone_is_refused_with_examples(zone):
    refused(call("current_time", timezone=zone), "Unknown time zone", "Europe/Paris")


def test_a_machine_without_a_time_zone_database_still_answers(tmp_path):
    try:
        import tzdata  # noqa: F401  (the package would stand in for the system's database)
        pytest.skip("the tzdata package is installed")
    except ImportError:
        pass
    program = ("from pathlib import Path\n"
               "from offgrid.agents.builtin.clock import CurrentTime\n"
               "from offgrid.agents.tools import ToolContext\n"
               "for zone in ('Europe/Paris', 'UTC'):\n"
               "    r = CurrentTime().call({'timezone': zone}, ToolContext(Path('.'), None))\n"
               "    print(r.is_error, r.text)\n")
    empty = tmp_path / "no-zones"
    empty.mkdir()
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True,
                          env=child_env(PYTHONTZPATH=str(empty)), timeout=60)
    paris, utc = done.stdout.splitlines()
    assert paris.startswith("True This machine has no time zone database"), done
    assert "UTC is now" in paris
    assert utc.startswith("False ") and utc.endswith(", UTC")


# -- files --------------------------------------------------------------------------------------

@pytest.fixture
def workspace(tmp_path) -> Path:
    return tmp_path / "home" / "workspace" / "user-1"  # made by the first call


@pytest.fixture
def outside(tmp_path) -> Path:
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("the server's secret")
    return folder


def test_a_file_written_is_read_back_and_listed(workspace):
    assert call("list_files", workspace).text == "The workspace is empty"
    assert workspace.is_dir() and workspace.stat().st_mode & 0o777 == 0o700
    wrote = call("write_file", workspace, path="notes/todo.txt", content="milk\nthé ☕\n")
    assert wrote.text == "Wrote 14 bytes to notes/todo.txt (a new file)"
    assert call("read_file", workspace, path="notes/todo.txt").text == "milk\nthé ☕\n"
    assert call("read_file", workspace, path="./notes//todo.txt").text == "milk\nthé ☕\n"
    again = call("write_file", workspace, path="notes/todo.txt", content="eggs")
    assert again.text == "Wrote 4 bytes to notes/todo.txt (it replaced the file there)"
    assert (workspace / "notes" / "todo.txt").read_text() == "eggs"
    assert call("list_files", workspace).text == "The workspace holds:\nnotes/"
    assert call("list_files", workspace, path="notes").text == (
        "The folder notes holds:\ntodo.txt (4 bytes)")
    assert sorted(os.listdir(workspace / "notes")) == ["todo.txt"]  # no temporary file left
    assert call("read_file", workspace, path="notes/empty.txt").is_error
    call("write_file", workspace, path="notes/empty.txt", content="")
    assert call("read_file", workspace, path="notes/empty.txt").text == "notes/empty.txt is empty"


@pytest.mark.parametrize("path, why", [
    ("../../etc/passwd", "leaves the workspace"), ("notes/../../x", "leaves the workspace"),
    ("..", "leaves the workspace"), ("/etc/passwd", "not inside the workspace"),
    ("~/.ssh/id_rsa", "not inside the workspace"), ("a\x00b", "NUL"), ("", "Give the path"),
])
def test_a_path_out_of_the_workspace_is_refused_as_written(workspace, path, why):
    refused(call("read_file", workspace, path=path), why)
    refused(call("write_file", workspace, path=path, content="x"), why)
    if path:
        refused(call("list_files", workspace, path=path), why)


def test_a_symbolic_link_is_never_followed(workspace, outside):
    workspace.mkdir(parents=True)
    (workspace / "out").symlink_to(outside)
    (workspace / "secret.txt").symlink_to(outside / "secret.txt")
    (workspace / "inside").mkdir()
    (workspace / "alias").symlink_to(workspace / "inside")
    for path in ("out/secret.txt", "out/new.txt", "alias/x.txt"):
        refused(call("read_file", workspace, path=path), "symbolic link")
        refused(call("write_file", workspace, path=path, content="planted"), "symbolic link")
    refused(call("read_file", workspace, path="secret.txt"), "symbolic link")
    refused(call("write_file", workspace, path="secret.txt", content="x"), "symbolic link")
    refused(call("list_files", workspace, path="out"), "symbolic link")
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "the server's secret"
    listed = call("list_files", workspace).text.splitlines()
    assert "out (symbolic link)" in listed and "secret.txt (symbolic link)" in listed


def test_only_regular_files_are_read_and_a_fifo_never_blocks(workspace):
    workspace.mkdir(parents=True)
    os.mkfifo(workspace / "pipe")
    (workspace / "folder").mkdir()
    refused(call("read_file", workspace, path="pipe"), "special file")
    refused(call("write_file", workspace, path="pipe", content="x"), "special file")
    refused(call("read_file", workspace, path="folder"), "folder", "list_files")
    refused(call("write_file", workspace, path="folder", content="x"), "folder")
    refused(call("read_file", workspace, path="folder/nothing"), "no file folder/nothing")
    (workspace / "file").write_text("x")
    refused(call("read_file", workspace, path="file/below"), "file is not a folder")
    refused(call("list_files", workspace, path="file"), "not a folder")


def test_sizes_are_bounded(workspace):
    workspace.mkdir(parents=True)
    (workspace / "big.txt").write_bytes(b"a" * (MAX_READ_BYTES - 1) + "é".encode() * 100)
    text = call("read_file", workspace, path="big.txt").text
    assert text.startswith("a" * (MAX_READ_BYTES - 1) + "\n[... cut: big.txt has 262,343 bytes")
    refused(call("write_file", workspace, path="huge.txt", content="é" * MAX_WRITE_BYTES),
            "at most 1,048,576")
    assert not (workspace / "huge.txt").exists()
    assert not call("write_file", workspace, path="full.txt", content="a" * MAX_WRITE_BYTES
                    ).is_error
    (workspace / "data.bin").write_bytes(bytes(range(256)))
    refused(call("read_file", workspace, path="data.bin"), "not UTF-8 text (256 bytes")
    refused(call("write_file", workspace, path="odd.txt", content="\ud800"), "not valid Unicode")


def test_a_long_listing_is_cut(workspace):
    (workspace / "many").mkdir(parents=True)
    for n in range(MAX_LISTED + 20):
        (workspace / "many" / f"f{n:04}").touch()
    lines = call("list_files", workspace, path="many").text.splitlines()
    assert lines[1] == "f0000 (0 bytes)" and len(lines) == 1 + MAX_LISTED + 1
    assert lines[-1] == "[... and 20 more entries]"


# -- shell --------------------------------------------------------------------------------------

def shell(workspace: Path, command, **context) -> ToolResult:
    return TOOLS["shell"].call({"command": command}, ToolContext(workspace, None, **context))


def test_a_program_runs_in_the_workspace_with_its_exit_code(workspace):
    assert shell(workspace, ["echo", "hi"]).text == "Exit code 0. Output:\nhi\n"
    assert shell(workspace, ["pwd"]).text == f"Exit code 0. Output:\n{workspace}\n"
    failed = shell(workspace, ["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert failed.is_error and failed.text == "Exit code 3. Output:\nout\nerr\n"
    assert shell(workspace, ["true"]).text == "Exit code 0. Output:\n(none)"


def test_no_shell_expands_anything(workspace):
    result = shell(workspace, ["echo", "$HOME", "*", "`id`", ";", "ls", "|", "cat", ">", "x"])
    assert result.text == "Exit code 0. Output:\n$HOME * `id` ; ls | cat > x\n"
    assert os.listdir(workspace) == []


def test_the_servers_environment_is_not_passed_on(workspace, monkeypatch):
    monkeypatch.setenv("OFFGRID_ADMIN_PASSWORD", "hunter2")
    output = shell(workspace, ["env"]).text
    assert "hunter2" not in output and f"HOME={workspace}\n" in output


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie no longer does: it waits for a parent to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_command_out_of_time_is_killed_with_what_it_started(workspace):
    started = time.monotonic()
    result = shell(workspace, ["sh", "-c", "sleep 30 & echo $!; wait"],
                   deadline=time.monotonic() + 1)
    refused(result, "ran longer than 1.0 s and was stopped")
    assert time.monotonic() - started < 25  # not the 30 s of sleep
    sleeper = int(result.text.splitlines()[-1])
    wait_until(lambda: not alive(sleeper), message="the program's child is killed")


def test_what_a_program_leaves_running_ends_with_the_call(workspace):
    result = shell(workspace, ["sh", "-c", "sleep 30 & echo $!"])
    assert not result.is_error, result
    wait_until(lambda: not alive(int(result.text.splitlines()[-1])))


def test_a_cancelled_run_stops_its_command(workspace):
    cancelled = threading.Event()
    results = []
    runner = threading.Thread(target=lambda: results.append(shell(
        workspace, ["sh", "-c", "echo begun; touch started; exec sleep 30"],
        cancelled=cancelled)))
    runner.start()
    wait_until(lambda: (workspace / "started").exists())
    cancelled.set()
    runner.join(TOOLS["shell"].timeout_s / 2)  # well before the call would time out
    assert not runner.is_alive()
    assert refused(results[0], "cancelled").endswith("until then:\nbegun\n")


def test_a_flood_of_output_keeps_its_start_and_end(workspace):
    program = "import sys; sys.stdout.write('a' * 1_000_000 + 'END')"
    text = shell(workspace, [sys.executable, "-c", program]).text
    assert len(text) < MAX_OUTPUT_BYTES + 200
    assert "a\n[... 934,467 bytes of output left out ...]\na" in text and text.endswith("aEND")


@pytest.mark.parametrize("command, why", [
    ("ls -l", "list of strings"), ([], "list of strings"), (["ls", 3], "list of strings"),
    (["ls", "a\x00"], "NUL"), (["  "], "empty"), (["no-such-program-here"], "no program"),
    (["echo"] * 300, "most is 256"), ([str(Path(__file__))], "cannot be run"),
])
def test_a_bad_command_is_refused(workspace, command, why):
    refused(shell(workspace, command), why)


# -- http_get -----------------------------------------------------------------------------------

PAGE = (b"<html><head><title>Field radio</title></head><body><nav>Home | About</nav>"
        b"<h1>Resetting</h1><p>Hold POWER and MENU for ten seconds.</p></body></html>")


class Site(ThreadingHTTPServer):
    """A web server on a loopback address, which notes each path asked for and the Host it was
    asked by; HTTPS with `tls`."""
    daemon_threads = True

    def __init__(self, host: str, tls: ssl.SSLContext | None = None):
        super().__init__((host, 0), _Pages)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.url = f"http{'s' if tls else ''}://{host}:{self.server_address[1]}"
        self.asked: list[str] = []
        self.hosts: list[str] = []
        self.release = threading.Event()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


class _Pages(BaseHTTPRequestHandler):
    server: Site

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.asked.append(self.path)
        self.server.hosts.append(self.headers["Host"])
        if self.path.startswith("/to/"):  # /to/<url>: a redirect there
            return self._send(302, b"", "text/plain", Location=unquote(self.path[len("/to/"):]))
        if self.path == "/stall":  # headers, then silence
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"a")
            self.wfile.flush()
            self.server.release.wait(60)
            return
        pages = {"/page": (200, PAGE, "text/html; charset=utf-8"),
                 "/big": (200, b"x" * (4 * MAX_BODY_BYTES), "text/plain"),
                 "/image": (200, bytes(range(256)), "image/png"),
                 "/data": (200, b'{"ok": true}', "application/json")}
        self._send(*pages.get(self.path, (404, b"no such page", "text/plain")))

    def _send(self, status: int, body: bytes, content_type: str, **headers) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site():
    site = Site("127.0.0.1")
    yield site
    site.close()


@pytest.fixture(scope="module")
def other_site():
    """Another loopback address, one the allowed network leaves out."""
    site = Site("127.0.0.2")
    yield site
    site.close()


def allowing(networks: str) -> dict:
    return {tool.name: tool for tool in builtin_tools(
        Settings(http_get_allowed_networks=networks))}


def fetch(url: str, networks: str = "", **context) -> ToolResult:
    return allowing(networks)["http_get"].call({"url": url},
                                               ToolContext(Path("/nonexistent"), None, **context))


def test_loopback_is_refused_by_default_and_nothing_is_sent(site):
    port, asked = site.server_address[1], len(site.asked)
    for url in (site.url + "/page", f"http://localhost:{port}/page", f"http://[::1]:{port}/",
                f"http://0x7f.1:{port}/page", f"http://2130706433:{port}/page"):
        refused(fetch(url), "not a public address", "loopback", "http_get_allowed_networks")
    assert site.asked[asked:] == []


def test_an_allowed_network_is_reached_and_its_page_read_as_text(site):
    result = fetch(site.url + "/page", "127.0.0.0/8")
    assert not result.is_error, result
    head, text = result.text.split("\n\n", 1)
    assert head == (f"HTTP 200 OK from {site.url}/page\n"
                    f"Content-Type: text/html; charset=utf-8 ({len(PAGE)} bytes)")
    assert text == "Title: Field radio\n\nResetting\n\nHold POWER and MENU for ten seconds."
    assert fetch(site.url + "/data", "127.0.0.1").text.endswith('\n\n{"ok": true}')
    assert fetch(site.url + "/image", "127.0.0.1").text.endswith(
        "(binary content of type image/png, not shown)")
    missing = fetch(site.url + "/nothing here", "127.0.0.1")
    assert missing.is_error and missing.text.startswith("HTTP 404 Not Found")
    assert site.asked[-1] == "/nothing%20here"


def test_the_site_is_asked_by_the_urls_name_at_the_address_checked(site):
    port = site.server_address[1]
    assert "Resetting" in fetch(f"http://localhost:{port}/page", "127.0.0.1").text
    assert site.hosts[-1] == f"localhost:{port}"


@pytest.fixture(scope="module")
def tls_site(tmp_path_factory):
    """An HTTPS site whose certificate, for localhost, no authority signed; and the names its
    clients asked for in the TLS handshake (SNI)."""
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
                    "-keyout", folder / "key.pem", "-out", folder / "cert.pem"],
                   check=True, capture_output=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    names = []
    tls.sni_callback = lambda connection, name, context: names.append(name)
    site = Site("127.0.0.1", tls)
    yield site, names
    site.close()


def test_https_checks_the_certificate_against_the_urls_name(tls_site):
    site, names = tls_site
    refused(fetch(f"https://localhost:{site.server_address[1]}/page", "127.0.0.1"),
            "TLS certificate is not valid", "self-signed")
    assert names == ["localhost"] and site.asked == []


def test_a_redirect_is_followed_and_checked_again(site, other_site):
    assert "Resetting" in fetch(f"{site.url}/to//page", "127.0.0.1").text
    for target in (other_site.url + "/page", "http://169.254.169.254/latest/meta-data",
                   "http://10.0.0.1/", "http://[::ffff:10.0.0.1]/"):
        refused(fetch(f"{site.url}/to/{target}", "127.0.0.1/32"), f"redirected to {target}",
                "not a public address")
    refused(fetch(f"{site.url}/to/file:///etc/passwd", "127.0.0.1"), "not an http://")
    refused(fetch(f"{site.url}/to/{site.url}/to/{site.url}/to/{site.url}/to/{site.url}/to/"
                  f"{site.url}/to//page", "127.0.0.1"), "more than 5 times")
    assert other_site.asked == []


def test_the_body_is_cut(site):
    result = fetch(site.url + "/big", "127.0.0.1")
    assert f"(262,144 bytes, cut at {MAX_BODY_BYTES:,})" in result.text
    assert result.text.endswith("\n\n" + "x" * MAX_BODY_BYTES)


def test_a_silent_server_runs_into_the_deadline(site):
    refused(fetch(site.url + "/stall", "127.0.0.1", deadline=time.monotonic() + 1),
            "timed out")


def test_a_cancelled_run_stops_its_fetch(site):
    cancelled, results = threading.Event(), []
    asked = len(site.asked)
    runner = threading.Thread(target=lambda: results.append(
        fetch(site.url + "/stall", "127.0.0.1", cancelled=cancelled)))
    runner.start()
    wait_until(lambda: "/stall" in site.asked[asked:])
    cancelled.set()
    runner.join(TOOLS["http_get"].timeout_s / 2)  # well before the call would time out
    assert not runner.is_alive()
    refused(results[0], "cancelled")


@pytest.mark.parametrize("url, why", [
    ("ftp://example.org/x", "not an http://"), ("file:///etc/passwd", "not an http://"),
    ("http://user:secret@example.org/", "user name or password"), ("http:///x", "names no host"),
    ("http://example.org:99999/", "not a URL"), ("http://no-such-host.invalid/", "cannot be found"),
])
def test_a_bad_url_is_refused(url, why):
    refused(fetch(url), why)


@pytest.mark.parametrize("address, why", [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("192.168.1.1", "private"),
    ("172.16.0.1", "private"), ("169.254.169.254", "link-local"), ("0.0.0.0", "unspecified"),
    ("224.0.0.1", "multicast"), ("100.64.0.1", "not public"), ("240.0.0.1", "private"),
    ("::1", "loopback"), ("::", "unspecified"), ("fe80::1", "link-local"),
    ("fc00::1", "private"), ("ff02::1", "multicast"), ("fec0::1", "site-local"),
    ("::ffff:127.0.0.1", "loopback (127.0.0.1)"), ("::ffff:10.0.0.1", "private (10.0.0.1)"),
    ("2002:7f00:1::1", "loopback (127.0.0.1)"), ("64:ff9b::a00:1", "reserved"),
    ("8.8.8.8", None), ("2606:4700:4700::1111", None), ("::ffff:8.8.8.8", None),
])
def test_which_addresses_are_not_public(address, why):
    assert refusal(ipaddress.ip_address(address), ()) == why


def test_an_allowed_network_admits_its_addresses_only():
    allowed = (ipaddress.ip_network("192.168.1.0/24"), ipaddress.ip_network("fd00::/8"))
    assert refusal(ipaddress.ip_address("192.168.1.7"), allowed) is None
    assert refusal(ipaddress.ip_address("::ffff:192.168.1.7"), allowed) is None
    assert refusal(ipaddress.ip_address("fd12::1"), allowed) is None
    assert refusal(ipaddress.ip_address("192.168.2.7"), allowed) == "private"


def test_the_allowed_networks_setting_is_checked_at_start():
    assert Settings(http_get_allowed_networks=" 10.0.0.5, fd00::/8 ,").http_get_networks() == [
        ipaddress.ip_network("10.0.0.5/32"), ipaddress.ip_network("fd00::/8")]
    with pytest.raises(ValueError, match="http_get_allowed_networks.*'10.0.0.0/33'"):
        Settings(http_get_allowed_networks="10.0.0.0/33")


# -- kb_search ----------------------------------------------------------------------------------

RADIO = ("# Field radio\n\n## Resetting\n\nTo reset the field radio, hold POWER and MENU together "
         "for ten seconds, until the screen flashes twice.\n\n## Batteries\n\nThe radio runs "
         "for nine hours on two AA batteries; carry a spare pair.")


@pytest.fixture(scope="module")
def knowledge(model_files, tmp_path_factory):
    """A real knowledge base with the test embedding model, its database, and two users."""
    home = tmp_path_factory.mktemp("kb-home")
    (home / "models").mkdir()
    (home / "models" / model_files["embedding"].name).symlink_to(model_files["embedding"])
    registry = Registry(Settings(home=home))
    db = Database(home / "offgrid.db")
    kb = KnowledgeBase(db, registry)
    owner = users.create(db, "ada", "ada-password-1", "user")
    other = users.create(db, "bob", "bob-password-1", "user")
    yield kb, owner, other
    registry.close()


def search(kb, reader: Reader, **arguments) -> ToolResult:
    tool = {t.name: t for t in builtin_tools(Settings(), kb)}["kb_search"]
    return tool.call(arguments, ToolContext(Path("/nonexistent"), reader))


def test_kb_search_finds_passages_with_the_callers_rights(knowledge):
    kb, owner, other = knowledge
    document, _ = kb.add(Reader(owner.id, "user"), "radio.md", RADIO.encode())
    found = search(kb, Reader(owner.id, "user"), query="how do I reset the radio?", top_k=1)
    assert not found.is_error, found
    assert found.text.startswith("[1] radio.md > Field radio > Resetting\n")
    assert "To reset the field radio, hold POWER and MENU" in found.text and "[2]" not in found.text
    assert search(kb, Reader(other.id, "user"), query="reset the radio").text == (
        "No passages in the knowledge base match 'reset the radio'")
    assert "No passages" in search(kb, Reader(role="guest"), query="reset the radio").text
    kb.share(document.id, True)
    assert search(kb, Reader(role="guest"), query="reset the radio").text.startswith("[1] ")
    two = search(kb, Reader(single_user=True), query="radio batteries", top_k=2).text
    assert two.count("[1] ") == 1 and two.count("[2] ") == 1


def test_kb_search_says_why_it_cannot_search(knowledge):
    kb, owner, _ = knowledge
    refused(search(kb, Reader(owner.id, "user"), query="  "), "empty")
    refused(search(kb, Reader(owner.id, "user"), query="radio", top_k=50), "from 1 to 10")
    kb.disable()
    try:
        refused(search(kb, Reader(owner.id, "user"), query="radio"), "knowledge base is off")
    finally:
        kb.enable()
