"""Transactions: checks on keys' versions and operations on one bucket, applied all together
or, when a check does not hold, not at all (POST /v1/<bucket>)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType

from thisdb._core import Call, TransactionBody
from thisdb.models import OpResult

Commit = Call[list[OpResult]]


class Transaction(TransactionBody):
    """A transaction of the sync client: `Client.transaction(bucket)`.

    >>> tx = db.transaction(bucket)
    >>> tx.check("a", "17")        # "a" must be at version 17
    >>> tx.check("lock", None)     # "lock" must not exist
    >>> tx.set("a", "text", ttl=60)
    >>> tx.increment("n", by=5)
    >>> tx.get("x")
    >>> results = tx.commit()      # one OpResult per operation, in order

    Each method returns the index of what it added (a check's is what Conflict.failed names,
    an operation's the place of its result). `commit()` sends it all in one request; Conflict
    when a check does not hold (then nothing was applied). As a context manager it commits at
    the end of the block, unless the block raised or called commit() itself; the results are
    then in `results`.
    """

    def __init__(self, bucket: str, run: Callable[[Commit], list[OpResult]]):
        super().__init__(bucket)
        self._send = run
        self.results: list[OpResult] | None = None
        """The results of the last commit (None before it)."""

    def commit(self) -> list[OpResult]:
        """Apply the operations if every check holds; each call sends the transaction again."""
        self.results = self._send(self.call())
        return self.results

    def __enter__(self) -> Transaction:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self.results is None:
            self.commit()


class AsyncTransaction(TransactionBody):
    """A transaction of the async client: `AsyncClient.transaction(bucket)`, the same as
    Transaction with `await tx.commit()` and `async with`."""

    def __init__(self, bucket: str, run: Callable[[Commit], Awaitable[list[OpResult]]]):
        super().__init__(bucket)
        self._send = run
        self.results: list[OpResult] | None = None
        """The results of the last commit (None before it)."""

    async def commit(self) -> list[OpResult]:
        """Apply the operations if every check holds; each call sends the transaction again."""
        self.results = await self._send(self.call())
        return self.results

    async def __aenter__(self) -> AsyncTransaction:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self.results is None:
            await self.commit()
