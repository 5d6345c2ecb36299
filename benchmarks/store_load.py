"""sqlite against PostgreSQL on one machine, under the requests that touch the database most: a
login, a session turn and a knowledge-base search. For PostgreSQL it also reads, from the
database's own statistics, the transactions and rows each request cost, and measures what the
database sustains on this machine (pgbench), which gives the scaling model: how many replicas
one database serves before it is the limit. Writes the "## Scale-out" section of
docs/benchmarks.md.

    python benchmarks/store_load.py [--seconds 15] [--clients 4]

Needs PostgreSQL's server programs (scripts/fetch_postgres.py installs them as root).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "scripts"), str(ROOT / "tests")]

import fetch_models  # noqa: E402
from report import machine, with_section  # noqa: E402
from run import Plan, offgrid  # noqa: E402

from support.postgres import Cluster  # noqa: E402

HEADING = "## Scale-out"
PLAN = Plan([4], 1, 64, 0, 0, 2, 4, 2048)
PORT = 18800
PASSWORD = "correct horse battery staple"
DOCUMENT = " ".join(f"Hut {i} keeps its radio on channel {i % 9} and its spare fuel in the "
                    f"shed by the {('north', 'east', 'south', 'west')[i % 4]} fence."
                    for i in range(200))


# -- talking to a server ---------------------------------------------------------------------------

def call(url: str, path: str, body: dict | None = None, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, None if body is None else
                                     json.dumps(body).encode(), headers)
    with urllib.request.urlopen(request, timeout=300) as response:
        return json.loads(response.read())


def login(url: str) -> str:
    return call(url, "/v1/auth/login", {"username": "admin", "password": PASSWORD})[
        "access_token"]


def prepare(url: str, embedding_model: str, clients: int) -> str:
    """Log in, turn the knowledge base on with one document, and give each client a session."""
    token = login(url)
    call(url, "/v1/rag/enable", {"embedding_model": embedding_model}, token)
    call(url, "/v1/documents/ingest", {"name": "huts.txt", "content": DOCUMENT}, token)
    deadline = time.monotonic() + 300
    while not call(url, "/v1/documents", token=token)["count"]:
        if time.monotonic() > deadline:
            raise RuntimeError("the document was not ingested in 5 minutes")
        time.sleep(0.5)
    for client in range(clients):
        call(url, "/v1/sessions", {"name": f"bench-{client}"}, token)
    return token


def scenarios(token: str) -> dict:
    """Each scenario's request, as (path, body) for client `c`'s `i`th request."""
    return {
        "login": lambda c, i: ("/v1/auth/login", {"username": "admin", "password": PASSWORD},
                               None),
        "session turn": lambda c, i: (f"/v1/sessions/bench-{c}/generate",
                                      {"content": f"Note {i}: hut {i % 7} is dry.",
                                       "max_tokens": 1}, token),
        "KB search": lambda c, i: ("/v1/documents/search",
                                   {"query": f"Where does hut {i % 200} keep its fuel?",
                                    "top_k": 3}, token),
    }


def requests_per_second(url: str, make, clients: int, seconds: float) -> tuple[float, int]:
    """Requests answered per second, and how many, with `clients` sending back to back."""
    done = [0] * clients
    stop = time.monotonic() + seconds

    def client(number: int) -> None:
        i = 0
        while time.monotonic() < stop:
            path, body, token = make(number, i)
            call(url, path, body, token)
            done[number] += 1
            i += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started), sum(done)


# -- PostgreSQL's own counts -----------------------------------------------------------------------

STATS = ("xact_commit", "tup_returned", "tup_fetched", "tup_inserted", "tup_updated",
         "tup_deleted")


def database_stats(cluster: Cluster, url: str) -> dict[str, int]:
    import pg8000.native
    name = url.rsplit("/", 1)[1]
    connection = pg8000.native.Connection("offgrid", host="127.0.0.1", port=cluster.port,
                                          database=name)
    try:
        connection.run("SELECT pg_stat_clear_snapshot()")
        row = connection.run(f"SELECT {', '.join(STATS)} FROM pg_stat_database "
                             "WHERE datname = :name", name=name)[0]
        return dict(zip(STATS, row, strict=True))
    finally:
        connection.close()


def pgbench_tps(cluster: Cluster, clients: int, seconds: int) -> dict[str, float]:
    """What PostgreSQL sustains here: pgbench's TPC-B-like writes and its select-only reads."""
    database = cluster.new_database().rsplit("/", 1)[1]
    base = [str(cluster.bin / "pgbench"), "-h", "127.0.0.1", "-p", str(cluster.port), "-U",
            "offgrid"]
    subprocess.run([*base, "-i", "-s", "4", "-q", database], check=True, capture_output=True)
    tps = {}
    for label, extra in (("writes", []), ("reads", ["-S"])):
        done = subprocess.run([*base, "-c", str(clients), "-j", str(clients), "-T",
                               str(seconds), *extra, database], check=True, capture_output=True,
                              text=True)
        line = next(line for line in done.stdout.splitlines() if line.startswith("tps"))
        tps[label] = float(line.split("=")[1].split()[0])
    return tps


# -- the run and the page --------------------------------------------------------------------------

def measure(url: str, token: str, clients: int, seconds: float, stats=None) -> dict:
    results = {}
    for name, make in scenarios(token).items():
        before = stats() if stats else None
        rate, count = requests_per_second(url, make, clients, seconds)
        results[name] = {"rps": rate}
        if stats:
            after = stats()
            results[name].update({key: (after[key] - before[key]) / count for key in STATS})
        print(f"  {name}: {rate:.1f} requests/s", flush=True)
    return results


def render(sqlite: dict, postgres: dict, tps: dict, clients: int, seconds: float) -> str:
    lines = [f"Run with `.venv/bin/python benchmarks/store_load.py --seconds {seconds:g} "
             f"--clients {clients}`: one OffGrid in multi-user mode on sqlite, then one on "
             "PostgreSQL 15 (default durability: fsync and synchronous commit on) on the same "
             f"machine, {clients} clients each sending requests back to back for {seconds:g} s "
             "per row; SmolLM2-135M-Instruct for the session turn (one token), MiniLM for the "
             f"searches' query embedding. {machine()['date']}, {machine()['cpu']}. "
             "Transactions and rows are PostgreSQL's own counts (`pg_stat_database`) over the "
             "row's requests; a read outside a write is a transaction of its own.", "",
             "| request | sqlite requests/s | PostgreSQL requests/s | PostgreSQL / sqlite | "
             "transactions per request | rows read per request | rows written per request | "
             "replicas before the database is the limit |",
             "|---|---|---|---|---|---|---|---|"]
    for name, ours in postgres.items():
        read = ours["tup_returned"] + ours["tup_fetched"]
        written = ours["tup_inserted"] + ours["tup_updated"] + ours["tup_deleted"]
        capacity = tps["writes"] if written else tps["reads"]
        replicas = capacity / max(ours["rps"] * ours["xact_commit"], 1e-9)
        lines.append(f"| {name} | {sqlite[name]['rps']:.1f} | {ours['rps']:.1f} | "
                     f"{ours['rps'] / sqlite[name]['rps']:.2f}× | {ours['xact_commit']:.1f} | "
                     f"{read:.0f} | {written:.1f} | {replicas:.0f} |")
    lines += ["", "### The scaling model", "",
              f"pgbench on the same machine and cluster sustains {tps['writes']:.0f} TPC-B-like "
              f"write transactions/s and {tps['reads']:.0f} select-only ones/s with {clients} "
              "clients. Each replica, flat out on one kind of request, asks the database for "
              "its requests/s times its transactions per request; the last column divides what "
              "the database sustains (pgbench's write rate for requests that write, its "
              "select-only rate for those that only read) by that. These are upper bounds on "
              "the load, so lower bounds on the replicas: a replica's rate is bounded by its "
              "model and its CPU (a real session turn generates tens of tokens, not one, and "
              "asks for the same transactions per turn), and replicas on machines of their own "
              "do not take the database's CPU as these did. Tokens/s per replica are those of "
              "one server (the tables above: about 130 tokens/s at 4 clients for the starter "
              "model on 2 cores); replicas share no model, so N replicas give N times that "
              "until the database is the limit."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"))
    args = parser.parse_args()
    paths = fetch_models.ensure_all()
    cluster = Cluster(durable=True)
    try:
        tps = pgbench_tps(cluster, args.clients, int(args.seconds))
        print(f"  pgbench: {tps}", flush=True)
        results = {}
        with tempfile.TemporaryDirectory() as folder:
            models = Path(folder) / "models"
            models.mkdir()
            for path in (paths["starter"], paths["embedding"]):
                (models / path.name).symlink_to(path)
            for store in ("sqlite", "postgresql"):
                env = {"OFFGRID_HOME": f"{folder}/{store}", "OFFGRID_MULTI_USER": "true",
                       "OFFGRID_ADMIN_PASSWORD": PASSWORD}
                url = cluster.new_database() if store == "postgresql" else None
                if url:
                    env["OFFGRID_DATABASE_URL"] = url
                server = offgrid(models, paths["starter"].stem, PLAN, PORT, env=env)
                try:
                    print(f"{store}:", flush=True)
                    token = prepare(server.url, paths["embedding"].stem, args.clients)
                    stats = (lambda url=url: database_stats(cluster, url)) if url else None
                    results[store] = measure(server.url, token, args.clients, args.seconds,
                                             stats)
                finally:
                    server.stop()
    finally:
        cluster.stop()
    out = Path(args.out)
    out.write_text(with_section(out.read_text(), HEADING, render(
        results["sqlite"], results["postgresql"], tps, args.clients, args.seconds)))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
