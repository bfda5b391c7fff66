"""What every text-search backend provides, and the error type the searcher understands."""

from __future__ import annotations

from typing import Any, Protocol


class BackendError(Exception):
    """A search backend failed.

    ``retryable`` marks transient failures (timeouts, connection errors, 429, 5xx) that
    the searcher retries with backoff; ``retry_after`` is the server's requested wait.
    """

    def __init__(self, message: str, retryable: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class TextBackend(Protocol):
    #: Names the backend and its data for the cache key, so two corpora never share entries.
    identity: str

    def search(self, query: str, top_k: int) -> list[dict[str, Any]]:
        """Up to ``top_k`` results as ``{title, link, snippet, date}``; raise :class:`BackendError`."""
        ...


def make_result(title: Any, link: Any = "", snippet: Any = "", date: Any = None) -> dict[str, Any]:
    """One result in the shape the wire format renders (strings; ``date`` may be ``None``)."""
    return {
        "title": str(title).strip(),
        "link": "" if link is None else str(link).strip(),
        "snippet": "" if snippet is None else " ".join(str(snippet).split()),
        "date": None if date in (None, "") else str(date),
    }
