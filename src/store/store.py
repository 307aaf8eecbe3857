"""The store object an application holds: a migrated engine and sessions on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

from sqlalchemy.engine import Engine
from sqlmodel import Session

from changegate.store.engine import create_engine_for
from changegate.store.migrate import upgrade


class Store:
    """An engine on a migrated audit database; `session()` is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back on error.

        Rows read in the block stay readable after it: they are not expired on commit.
        """
        with Session(self.engine, expire_on_commit=False) as session, session.begin():
            yield session

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_store(url: str | os.PathLike[str]) -> Store:
    """Open the store at a URL or SQLite file path, upgrading its schema to the newest first."""
    engine = create_engine_for(url)
    try:
        upgrade(engine)
    except BaseException:
        engine.dispose()
        raise
    return Store(engine)
