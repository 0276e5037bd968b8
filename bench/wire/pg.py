"""psycopg2 asynchronous connections driven by the asyncio loop.

Owns: connecting and running one statement at a time on a non-blocking
psycopg2 connection (libpq parses in C; the loop only waits on the socket).
Must not: know the benchmark's schema or statements.
"""

import asyncio

import psycopg2
import psycopg2.extensions as ext


async def _wait(conn):
    loop = asyncio.get_running_loop()
    fd = conn.fileno()
    while True:
        state = conn.poll()
        if state == ext.POLL_OK:
            return
        if state == ext.POLL_READ:
            watch, unwatch = loop.add_reader, loop.remove_reader
        elif state == ext.POLL_WRITE:
            watch, unwatch = loop.add_writer, loop.remove_writer
        else:
            raise psycopg2.OperationalError(f"bad poll state {state}")
        future = loop.create_future()
        watch(fd, future.set_result, None)
        try:
            await future
        finally:
            unwatch(fd)


class AsyncPg:
    """One autocommit connection; `execute` runs a statement and returns its rows."""

    def __init__(self, conn):
        self._conn = conn
        self._cur = conn.cursor()

    @classmethod
    async def connect(cls, dsn: str, setup: tuple = ()) -> "AsyncPg":
        conn = psycopg2.connect(dsn, async_=1)
        await asyncio.wait_for(_wait(conn), 10)
        pg = cls(conn)
        for statement in setup:
            await pg.execute(statement)
        return pg

    async def execute(self, sql: str, params=None) -> list:
        self._cur.execute(sql, params)
        await _wait(self._conn)
        return self._cur.fetchall() if self._cur.description else []

    async def close(self):
        self._conn.close()
