"""Validation and normalisation of text-search queries.

Queries come straight from model output, so they can be empty, pasted pages, or carry
bytes that are not UTF-8. Each of these gets a clear message the model can act on instead
of a backend stack trace.
"""

from __future__ import annotations

import re
import unicodedata

_WHITESPACE = re.compile(r"\s+")


class QueryError(ValueError):
    """The query cannot be searched; the message is shown to the model."""


def clean_query(query: object, max_chars: int) -> str:
    """The query as it will be sent to a backend, or :class:`QueryError` saying what is wrong."""
    if isinstance(query, (bytes, bytearray)):
        try:
            query = bytes(query).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QueryError(f"the query is not valid UTF-8 (bad byte at position {exc.start})") from exc
    if not isinstance(query, str):
        raise QueryError(f"the query must be a string, got {type(query).__name__}")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as exc:
        # Lone surrogates: what Python makes of undecodable bytes under surrogateescape.
        raise QueryError(f"the query is not valid UTF-8 (undecodable character at position {exc.start})") from exc
    printable = "".join(ch if unicodedata.category(ch)[0] != "C" else " " for ch in query)
    cleaned = _WHITESPACE.sub(" ", printable).strip()
    if not cleaned:
        raise QueryError("the query is empty; write the words to search for")
    if len(cleaned) > max_chars:
        raise QueryError(f"the query is too long ({len(cleaned)} characters, limit {max_chars}); shorten it to the key terms")
    return cleaned


def normalise_for_cache(query: str) -> str:
    """Cache-key form: queries differing only in case, width or spacing share an entry."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", query).casefold()).strip()
