"""File checksums, streamed so that a large file (a corpus, model weights) is never read whole."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The SHA-256 hex digest of ``path``'s bytes, read in 1 MiB blocks.

    Raises:
        OSError: the file cannot be opened or read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
