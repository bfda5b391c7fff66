"""The result of one code execution, and its JSON shape on the wire.

The wire shape ``{status, execution_time, output: {stdout, stderr, result, images}}`` is the
one DeepEyesV2's clients already speak; ``notes`` is an extra key they ignore.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["success", "error", "timeout", "denied"]
STATUSES: tuple[str, ...] = ("success", "error", "timeout", "denied")

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Remove terminal colour codes (IPython colours its tracebacks)."""
    return _ANSI_ESCAPE.sub("", text)


class CappedText:
    """Accumulates streamed text up to a cap and says visibly how much was cut.

    The kernel already cuts its output at the same cap as it streams (``kernel_side._OutputCap``)
    and reports what it dropped (:meth:`dropped_upstream`); the cap here holds for a kernel
    whose user code went around that.
    """

    def __init__(self, cap: int):
        self.cap = cap
        self._parts: list[str] = []
        self._kept = 0
        self._dropped = 0

    def add(self, text: str) -> None:
        room = self.cap - self._kept
        if room > 0:
            self._parts.append(text[:room])
            self._kept += min(room, len(text))
        self._dropped += max(0, len(text) - max(room, 0))

    def dropped_upstream(self, count: int) -> None:
        """Count characters the kernel dropped before sending, for the truncation note."""
        self._dropped += max(0, count)

    def value(self) -> str:
        text = "".join(self._parts)
        if self._dropped:
            text += f"\n... [output truncated: {self._dropped} more characters]"
        return text


@dataclass
class ExecutionResult:
    """What one ``<code>`` block produced. ``images`` are PNG bytes."""

    status: Status
    execution_time: float
    stdout: str = ""
    stderr: str = ""
    result: str = ""
    images: list[bytes] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def to_wire(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "execution_time": self.execution_time,
            "output": {
                "stdout": self.stdout,
                "stderr": self.stderr,
                "result": self.result,
                "images": [base64.b64encode(image).decode("ascii") for image in self.images],
            },
            "notes": list(self.notes),
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ExecutionResult:
        output = data.get("output") or {}
        return cls(
            status=data["status"],
            execution_time=float(data.get("execution_time", 0.0)),
            stdout=output.get("stdout", ""),
            stderr=output.get("stderr", ""),
            result=output.get("result", "") or "",
            images=[base64.b64decode(image) for image in output.get("images", [])],
            notes=list(data.get("notes", [])),
        )
