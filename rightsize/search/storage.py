"""The study's storage: Optuna's RDBStorage with heartbeats, SQLite in WAL mode with one write lock
per transaction (workers share the file safely), the shipped PostgreSQL driver, and URLs shown
without their password."""

from __future__ import annotations

import contextlib
import time
import warnings
from typing import Any

import optuna

from rightsize.errors import RightsizeError
from rightsize.search.workers import Requeue

HEARTBEAT_S = 10
GRACE_S = 60  # a running trial without a heartbeat for this long is failed and its config queued again


# Workers that start together race to create the tables, and a SQLite file can refuse a busy
# writer at once (SQLITE_BUSY in WAL mode); waits of 0.5, 1.5, ... s add up to about 28 s.
OPEN_ATTEMPTS = 8

def masked(url: str) -> str:
    """The storage URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 — a URL SQLAlchemy cannot parse is shown as given, minus a password
        import re

        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDBStorage with heartbeats; a dead worker's running trial is failed and re-queued."""
    from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError, SQLAlchemyError

    engine_url = with_driver(url)
    engine_kwargs: dict[str, Any] = {}
    sqlite = engine_url.startswith("sqlite")
    if sqlite:
        engine_kwargs = {"connect_args": {"timeout": 120}}  # workers take turns on the file lock
        _sqlite_wal(url)
    for attempt in range(OPEN_ATTEMPTS):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # heartbeat and the retry callback are "experimental"
            try:
                storage = optuna.storages.RDBStorage(
                    engine_url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=Requeue(max_retry=3))
                if sqlite:
                    _sqlite_transactions(storage)
                return storage
            except (IntegrityError, ProgrammingError, OperationalError) as exc:
                # Workers starting together on a new database race to create Optuna's tables; the
                # loser sees "already exists" (or a locked SQLite file) and finds them on the next try.
                racing = not isinstance(exc, OperationalError) or any(
                    w in str(exc) for w in ("already exists", "database is locked"))
                if attempt == OPEN_ATTEMPTS - 1 or not racing:
                    raise RightsizeError(_storage_problem(url, exc)) from None
                time.sleep(0.5 + attempt)
            except (SQLAlchemyError, ValueError, ImportError) as exc:
                raise RightsizeError(_storage_problem(url, exc)) from None
    raise AssertionError("unreachable")


def _sqlite_wal(url: str) -> None:
    """Write-ahead logging on the study file (it persists in the file): readers do not wait for a
    writer, so workers sharing a SQLite study block each other far less."""
    import sqlite3

    from sqlalchemy.engine import make_url

    path = make_url(url).database
    if not path or path == ":memory:":
        return
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=120)) as conn:
                # Switching the mode needs the file to itself, and SQLite refuses at once (no busy
                # wait) while another worker writes; a file already in WAL mode needs no switch.
                if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == OPEN_ATTEMPTS - 1:
                raise RightsizeError(_storage_problem(url, exc)) from None
            time.sleep(0.5 + attempt)
        except sqlite3.Error as exc:
            raise RightsizeError(_storage_problem(url, exc)) from None


def _sqlite_transactions(storage) -> None:
    """Two settings on every SQLite connection of the study.

    * ``BEGIN IMMEDIATE``: Python's sqlite3 starts a transaction only at the first write, so Optuna's
      "read the queued trial's state, then set it RUNNING" ran as two transactions, and two workers
      could both pop one queued trial and run it (seen once two workers queued configs for each
      other: "Cannot tell a COMPLETE trial"). Taking the write lock when a transaction begins makes
      each storage call atomic across workers (SQLAlchemy's recipe for pysqlite); the calls are
      milliseconds long, and the others wait on the lock (``timeout``).
    * ``synchronous=NORMAL``: in WAL mode a commit no longer waits for the disk. A killed process
      loses nothing committed (the OS still has it); only a power cut can drop the last trials, and
      their records are in runs.jsonl (fsynced), where a resumed search finds them."""
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # no BEGIN of sqlite3's own: on_begin says when
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")

    def on_begin(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(storage.engine, "connect", on_connect)
    event.listen(storage.engine, "begin", on_begin)
    storage.engine.dispose()  # connections made while creating the tables get the settings too


def _storage_problem(url: str, exc: Exception) -> str:
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"--storage {masked(url)}: cannot open the study storage ({exc.__class__.__name__}: {first})"[:400]


def with_driver(url: str) -> str:
    """``postgresql://`` with the driver rightsize ships: SQLAlchemy 2.1 maps a bare ``postgresql://``
    to psycopg 3, while the requirements pin psycopg2-binary; an explicit ``+driver`` is kept."""
    from importlib.util import find_spec

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix) and find_spec("psycopg") is None and find_spec("psycopg2") is not None:
            return "postgresql+psycopg2://" + url[len(prefix):]
    return url
