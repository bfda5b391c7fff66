"""Errors in the OpenAI error shape, so any OpenAI client raises its usual exception.

The body is ``{"error": {"message", "type", "param", "code"}}`` as in OpenAI's API
reference; the status follows OpenAI's use: 400 invalid request, 401 missing or wrong API
key, 404 unknown model or route, 413 request too large, 500 server fault. Every error carries
a ``code`` (``invalid_request`` when no more precise one applies), so clients can branch on it.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.responses import JSONResponse


@dataclass
class APIError(Exception):
    """A request that cannot be served; rendered by :meth:`response`."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status)


def bad_request(message: str, param: str | None = None, code: str = "invalid_request") -> APIError:
    return APIError(400, message, param=param, code=code)


def context_length_exceeded(exc: Exception) -> APIError:
    """OpenAI's answer to a prompt longer than the model's context: 400, ``context_length_exceeded``."""
    return APIError(400, f"This model's maximum context length is exceeded: {exc}", param="messages", code="context_length_exceeded")


def unauthorized() -> APIError:
    return APIError(401, "missing or wrong API key (Authorization: Bearer <key>; the service reads it from $DEEPEYES_API_KEY)",
                    code="invalid_api_key")


def too_large(limit_bytes: int) -> APIError:
    return APIError(413, f"request body exceeds the limit of {limit_bytes} bytes", code="request_too_large")


def model_not_found(model: str, served: str) -> APIError:
    return APIError(404, f"The model '{model}' does not exist; this service serves '{served}'", param="model", code="model_not_found")


def server_error(message: str) -> APIError:
    return APIError(500, message, type="server_error", code="internal_error")
