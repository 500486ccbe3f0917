"""The loads of docker/memory.sh, each measured by the proxy's peak and current RSS.

Run by memory.sh with the proxy's address and process id; prints one line per phase.
"""

import os
import sys
import threading
import time

import psycopg

host, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
phases = (sys.argv[4].split(",") if len(sys.argv) > 4
          else ["big", "statements", "idle", "groups"])


def status(field):
    """A field of /proc/PID/status, in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise KeyError(field)


def connect(dbname="app"):
    return psycopg.connect(host=host, port=port, user="app", password="app", dbname=dbname,
                           autocommit=True, prepare_threshold=None)


def report(phase, before, peak, **extra):
    after = status("VmRSS")
    more = "".join(f" {k}={v}" for k, v in extra.items())
    print(f"{phase}: RSS before {before:.1f} MB, peak {peak:.1f} MB, after {after:.1f} MB{more}",
          flush=True)


class PeakWatch:
    """Samples VmRSS every 20 ms while a load runs (VmHWM never goes down)."""

    def __init__(self):
        self.peak = status("VmRSS")
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            self.peak = max(self.peak, status("VmRSS"))
            time.sleep(0.02)

    def stop(self):
        self.running = False
        self.thread.join()
        return self.peak


def big_queries(clients=8, size=60 << 20):
    """`clients` clients each send one query of `size` bytes at once."""
    before = status("VmRSS")
    watch = PeakWatch()
    text = "x" * (size - 64)
    errors, done = [], []

    def one(i):
        try:
            with connect() as conn:
                n = conn.execute(f"SELECT length('{text}') + {i}").fetchone()[0]
                done.append(n == len(text) + i)
        except Exception as e:  # the answer, or 53200 when the budget is exhausted
            errors.append(getattr(e, "sqlstate", None) or type(e).__name__)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    peak = watch.stop()
    time.sleep(1)
    report(f"{clients} queries of {size >> 20} MB", before, peak,
           answered=sum(done), wrong=done.count(False), errors=",".join(errors) or "none")


def statements(count=10_000):
    """One client prepares `count` distinct statements."""
    before = status("VmRSS")
    watch = PeakWatch()
    with connect() as conn:
        for i in range(count):
            conn.execute(f"SELECT {i} AS n, %s::int AS m", (i,), prepare=True)
    peak = watch.stop()
    report(f"{count} distinct prepared statements", before, peak)


def idle(count=10_000):
    """`count` clients log in and stay idle, then leave."""
    before = status("VmRSS")
    conns = []
    try:
        for _ in range(count):
            conns.append(connect())
        time.sleep(1)
        held = status("VmRSS")
    finally:
        for c in conns:
            c.close()
    time.sleep(2)
    report(f"{count} idle clients", before, held,
           per_client_kB=f"{(held - before) * 1024 / max(count, 1):.1f}")


def groups(count=1_000_000):
    """GROUP BY over `count` groups, each with rows on both shards of database "sharded",
    merged as the shards send their groups sorted by key; then the same grouped by a
    bytea key, which the proxy cannot order and so combines in memory."""
    with connect("sharded") as conn:
        conn.execute("DROP TABLE IF EXISTS facts")
        conn.execute("CREATE TABLE facts (id bigint PRIMARY KEY, g bigint, v int)")
        with conn.cursor().copy("COPY facts (id, g, v) FROM STDIN") as copy:
            for i in range(2 * count):
                copy.write_row((i, i % count, i % 7))
        conn.execute("ANALYZE facts")
        queries = [
            ("by key", "SELECT g, count(*), sum(v) FROM facts GROUP BY g"),
            ("by key, ORDER BY key", "SELECT g, count(*), sum(v) FROM facts GROUP BY g ORDER BY g DESC"),
            ("by key, ORDER BY sum LIMIT 10",
             "SELECT g, count(*), sum(v) FROM facts GROUP BY g ORDER BY sum(v) DESC, g LIMIT 10"),
            ("by a bytea key (in memory)",
             "SELECT convert_to(g::text, 'UTF8'), count(*), sum(v) FROM facts GROUP BY 1"),
        ]
        for name, sql in queries:
            before = status("VmRSS")
            watch = PeakWatch()
            started = time.monotonic()
            rows = 0
            wrong = 0
            with conn.cursor() as cur:
                cur.execute(sql)
                for row in cur:
                    rows += 1
                    wrong += row[1] != 2
            took = time.monotonic() - started
            peak = watch.stop()
            time.sleep(1)
            report(f"GROUP BY {name}", before, peak, groups=rows, wrong_counts=wrong,
                   seconds=f"{took:.1f}")


def copy_row(size=1 << 30, chunk=1 << 20):
    """COPY of one row of `size` bytes, sent in CopyData messages of `chunk` bytes, into a
    database of one shard (streamed to the server, whose own limit is 1 GB a row) and into
    a sharded one (where the row must be whole to find its key: refused with 22P04 past
    max_message_size)."""
    piece = b"x" * chunk
    for dbname, table, prefix in [("app", "wide", b""), ("sharded", "wide_sharded", b"1\t")]:
        with connect(dbname) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
            columns = "id bigint, v text" if prefix else "v text"
            conn.execute(f"CREATE TABLE {table} ({columns})")
            before = status("VmRSS")
            watch = PeakWatch()
            started = time.monotonic()
            outcome = "stored"
            try:
                cols = "(id, v)" if prefix else "(v)"
                with conn.cursor().copy(f"COPY {table} {cols} FROM STDIN") as copy:
                    copy.write(prefix)
                    for _ in range(size // chunk):
                        copy.write(piece)
                    copy.write(b"\n")
            except psycopg.Error as e:
                outcome = f"{e.sqlstate} {str(e).splitlines()[0][:80]!r}"
            took = time.monotonic() - started
            peak = watch.stop()
            alive = conn.execute("SELECT 1").fetchone()[0] == 1
            time.sleep(1)
            report(f"COPY of a {size >> 20} MB row into {dbname}", before, peak,
                   outcome=outcome, seconds=f"{took:.1f}", session_alive=alive)


for phase in phases:
    {"big": big_queries, "statements": statements, "idle": idle, "groups": groups,
     "copyrow": copy_row}[phase]()
