"""One scenario for Python's drivers, run straight against PostgreSQL and through pgshard
(one shard and two): parameters and common types, a prepared statement reused across
transactions, commit, rollback, an error then going on, COPY in and out, an aggregate,
and several clients at once, each answer checked against its own parameter and every
acknowledged write counted.

    python3 python_clients.py psycopg|asyncpg TABLE

Connects with the PG* environment variables. Prints "acknowledged N" (the rows the
clients were told were written) and "ok"; exits 1 with what differed otherwise. The
table, sharded by `id` when the database is sharded, is created first.
"""

import asyncio
import datetime
import decimal
import io
import os
import sys
import threading
import uuid

CLIENTS = 6
ROUNDS = 40

ROW = {
    "owner": "ada",
    "qty": 7,
    "price": decimal.Decimal("12.50"),
    "flag": True,
    "at": datetime.datetime(2024, 3, 4, 5, 6, 7, tzinfo=datetime.timezone.utc),
    "ref": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "raw": b"\x00\x01\xfe",
}
COLUMNS = list(ROW)
CREATE = (
    "CREATE TABLE {t} (id bigint PRIMARY KEY, owner text, qty int, price numeric, "
    "flag bool, at timestamptz, ref uuid, raw bytea)"
)


def fail(what):
    print(f"FAILED: {what}", flush=True)
    sys.exit(1)


def expect(label, got, wanted):
    if got != wanted:
        fail(f"{label}: got {got!r}, wanted {wanted!r}")


def psycopg_scenario(table):
    import psycopg

    conn = psycopg.connect("", autocommit=True)
    if os.environ.get("PSYCOPG_IMPL") == "python":
        expect("implementation", psycopg.pq.__impl__, "python")
        expect("libpq major version", psycopg.pq.version() // 10000, 15)
    conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(CREATE.format(t=table))
    insert = f"INSERT INTO {table} (id, {', '.join(COLUMNS)}) VALUES (%s{', %s' * len(COLUMNS)})"
    by_key = f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE id = %s"

    # Parameters and types, both ways (binary results too).
    conn.execute(insert, [1, *ROW.values()])
    for binary in (False, True):
        row = conn.cursor(binary=binary).execute(by_key, [1]).fetchone()
        expect(f"types (binary={binary})", dict(zip(COLUMNS, row)), ROW)

    # A prepared statement, reused across transactions.
    for i in range(3):
        with conn.transaction():
            got = conn.execute("SELECT %s::bigint + 1", [i], prepare=True).fetchone()[0]
            expect("prepared", got, i + 1)

    # A statement cache smaller than the statements: psycopg deallocates the ones it
    # evicts, inside the transaction, which must go on with the others.
    conn.prepared_max = 2
    with conn.transaction():
        for round in range(2):
            for i in range(5):
                got = conn.execute(f"SELECT %s::int + {i}", [i], prepare=True).fetchone()[0]
                expect(f"evicted statements (round {round})", got, 2 * i)
    conn.prepared_max = 100

    # Commit, rollback.
    with conn.transaction():
        conn.execute(insert, [2, *ROW.values()])
    try:
        with conn.transaction():
            conn.execute(insert, [3, *ROW.values()])
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    ids = [r[0] for r in conn.execute(f"SELECT id FROM {table} WHERE id IN (2, 3) ORDER BY id")]
    expect("commit and rollback", ids, [2])

    # An error, then going on, in and out of a transaction.
    for in_transaction in (False, True):
        try:
            if in_transaction:
                with conn.transaction():
                    conn.execute("SELECT 1 / 0")
            else:
                conn.execute("SELECT 1 / 0")
            fail("division by zero succeeded")
        except psycopg.errors.DivisionByZero:
            pass
        expect("after an error", conn.execute("SELECT %s::text", ["on"]).fetchone()[0], "on")

    # COPY in and out.
    with conn.cursor().copy(f"COPY {table} (id, owner, qty) FROM STDIN") as copy:
        for i in range(100, 120):
            copy.write_row((i, f"copied {i}", i))
    out = io.StringIO()
    with conn.cursor().copy(f"COPY {table} (id, owner) TO STDOUT") as copy:
        for data in copy:
            out.write(bytes(data).decode())
    copied = sorted(line for line in out.getvalue().splitlines() if "copied" in line)
    expect("copy out", len(copied), 20)
    expect("count", conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0], 22)

    # A server-side cursor (DECLARE, FETCH), 3 rows at a time, in order.
    with conn.transaction():
        with conn.cursor(name="by_id") as cur:
            cur.itersize = 3
            cur.execute(f"SELECT id FROM {table} ORDER BY id")
            ids = [r[0] for r in cur]
    expect("server cursor rows", len(ids), 22)
    expect("server cursor order", ids, sorted(ids))

    # Several clients at once.
    acknowledged = [0] * CLIENTS
    errors = []

    def client(n):
        try:
            with psycopg.connect("", autocommit=True) as c:
                for r in range(ROUNDS):
                    tag = f"c{n}-{r}"
                    got = c.execute("SELECT %s::text", [tag]).fetchone()[0]
                    if got != tag:
                        errors.append(f"client {n} asked {tag!r}, got {got!r}")
                    c.execute(insert, [1000 + n * ROUNDS + r, *ROW.values()])
                    acknowledged[n] += 1
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            errors.append(f"client {n}: {e}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        fail("; ".join(errors[:5]))
    return sum(acknowledged)


async def asyncpg_scenario(table):
    import asyncpg

    conn = await asyncpg.connect()
    await conn.execute(f"DROP TABLE IF EXISTS {table}")
    await conn.execute(CREATE.format(t=table))
    placeholders = ", ".join(f"${i + 2}" for i in range(len(COLUMNS)))
    insert = f"INSERT INTO {table} (id, {', '.join(COLUMNS)}) VALUES ($1, {placeholders})"
    by_key = f"SELECT {', '.join(COLUMNS)} FROM {table} WHERE id = $1"

    # Parameters and types (asyncpg reads every result in binary); fetchrow and fetchval
    # send an Execute with a row limit.
    await conn.execute(insert, 1, *ROW.values())
    row = await conn.fetchrow(by_key, 1)
    expect("types", dict(row), ROW)
    expect("fetchval", await conn.fetchval(f"SELECT owner FROM {table} WHERE id = $1", 1), "ada")

    # A prepared statement, reused across transactions.
    prepared = await conn.prepare("SELECT $1::bigint + 1")
    for i in range(3):
        async with conn.transaction():
            expect("prepared", await prepared.fetchval(i), i + 1)

    # Commit, rollback.
    async with conn.transaction():
        await conn.execute(insert, 2, *ROW.values())
    try:
        async with conn.transaction():
            await conn.execute(insert, 3, *ROW.values())
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    ids = [r[0] for r in await conn.fetch(f"SELECT id FROM {table} WHERE id IN (2, 3) ORDER BY id")]
    expect("commit and rollback", ids, [2])

    # An error, then going on, in and out of a transaction.
    for in_transaction in (False, True):
        try:
            if in_transaction:
                async with conn.transaction():
                    await conn.execute("SELECT 1 / 0")
            else:
                await conn.execute("SELECT 1 / 0")
            fail("division by zero succeeded")
        except asyncpg.exceptions.DivisionByZeroError:
            pass
        expect("after an error", await conn.fetchval("SELECT $1::text", "on"), "on")

    # COPY in and out (CSV: a sharded table takes text and CSV copies).
    source = io.BytesIO("".join(f"{i},copied {i},{i}\n" for i in range(100, 120)).encode())
    await conn.copy_to_table(table, source=source, columns=["id", "owner", "qty"], format="csv")
    out = io.BytesIO()
    await conn.copy_from_table(table, output=out, columns=["id", "owner"], format="csv")
    copied = [line for line in out.getvalue().decode().splitlines() if "copied" in line]
    expect("copy out", len(copied), 20)
    expect("count", await conn.fetchval(f"SELECT count(*) FROM {table}"), 22)

    # A cursor, prefetching 3 rows at a time, in order.
    async with conn.transaction():
        ids = [r["id"] async for r in conn.cursor(f"SELECT id FROM {table} ORDER BY id", prefetch=3)]
    expect("cursor rows", len(ids), 22)
    expect("cursor order", ids, sorted(ids))
    await conn.close()

    # Several clients at once.
    acknowledged = [0] * CLIENTS
    errors = []

    async def client(n):
        try:
            c = await asyncpg.connect()
            for r in range(ROUNDS):
                tag = f"c{n}-{r}"
                got = await c.fetchval("SELECT $1::text", tag)
                if got != tag:
                    errors.append(f"client {n} asked {tag!r}, got {got!r}")
                await c.execute(insert, 1000 + n * ROUNDS + r, *ROW.values())
                acknowledged[n] += 1
            await c.close()
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            errors.append(f"client {n}: {e}")

    await asyncio.gather(*(client(n) for n in range(CLIENTS)))
    if errors:
        fail("; ".join(errors[:5]))
    return sum(acknowledged)


def main():
    driver, table = sys.argv[1], sys.argv[2]
    if driver == "psycopg":
        acknowledged = psycopg_scenario(table)
    elif driver == "asyncpg":
        acknowledged = asyncio.run(asyncpg_scenario(table))
    else:
        fail(f"unknown driver {driver}")
    print(f"acknowledged {acknowledged}")
    print("ok", flush=True)


if __name__ == "__main__":
    main()
