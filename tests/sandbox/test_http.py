"""The HTTP surface: DeepEyesV2's request shape, /health, and HTTP 400 for malformed requests."""

from __future__ import annotations

import base64
import http.client
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from deepeyes.sandbox.client import SandboxClient, SandboxRequestError
from deepeyes.sandbox.launch import SandboxCluster


@pytest.fixture()
def base_url(sandbox_cluster: SandboxCluster) -> str:
    return f"http://127.0.0.1:{sandbox_cluster.ports[0]}"


def test_deepeyes_v2_request_shape(base_url: str, client: SandboxClient, session_id: str) -> None:
    for code, expected in (("v = 3", None), ("print(v * 2)", "6\n")):
        response = requests.post(f"{base_url}/jupyter_sandbox", json={"session_id": session_id, "code": code, "timeout": 10},
                                 timeout=30)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "success"
        assert isinstance(body["execution_time"], float)
        assert set(body["output"]) == {"stdout", "stderr", "result", "images"}
        if expected:
            assert body["output"]["stdout"] == expected


def test_health_reports_the_instance(base_url: str) -> None:
    body = requests.get(f"{base_url}/health", timeout=5).json()
    assert body["status"] == "ok" and body["ready"] is True
    assert body["instance"].endswith(base_url.rsplit(":", 1)[1])
    assert {"sessions", "warm_kernels", "pool_size"} <= set(body)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"code": "1"}, "missing field 'session_id'"),
        ({"session_id": "s"}, "missing field 'code'"),
        ({"session_id": 5, "code": "1"}, "field 'session_id' must be str"),
        ({"session_id": "s", "code": ["1"]}, "field 'code' must be str"),
        ({"session_id": "s", "code": "1", "timeout": -1}, "field 'timeout' must be in"),
        ({"session_id": "s", "code": "1", "timeout": 10 ** 9}, "field 'timeout' must be in"),
        ({"session_id": "s", "code": "1", "timeout": "10"}, "field 'timeout' must be int or float"),
        ({"session_id": "s", "code": "1", "timeout": True}, "field 'timeout' must be int or float"),
        ({"session_id": "bad id with spaces", "code": "1"}, "field 'session_id' must be"),
        (["not", "an", "object"], "must be a JSON object"),
    ],
)
def test_malformed_execute_requests_get_400(base_url: str, payload: object, message: str) -> None:
    response = requests.post(f"{base_url}/jupyter_sandbox", json=payload, timeout=10)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_non_json_and_oversized_bodies_get_400(base_url: str) -> None:
    not_json = requests.post(f"{base_url}/jupyter_sandbox", data=b"{nope", headers={"Content-Type": "application/json"}, timeout=10)
    assert not_json.status_code == 400 and "must be JSON" in not_json.json()["error"]
    huge = {"session_id": "s", "code": "x = '" + "a" * (3 * 1024 * 1024) + "'"}  # the test config allows 2 MB
    too_large = requests.post(f"{base_url}/jupyter_sandbox", json=huge, timeout=30)
    assert too_large.status_code == 400 and "larger than 2 MB" in too_large.json()["error"]
    assert requests.get(f"{base_url}/health", timeout=5).status_code == 200  # still serving


def test_bad_session_images_get_400(base_url: str) -> None:
    not_base64 = requests.post(f"{base_url}/sessions/open", json={"session_id": "img", "images": ["***"]}, timeout=10)
    assert not_base64.status_code == 400 and "not valid base64" in not_base64.json()["error"]
    not_image = base64.b64encode(b"plain text, not an image").decode()
    refused = requests.post(f"{base_url}/sessions/open", json={"session_id": "img", "images": [not_image]}, timeout=60)
    assert refused.status_code == 400 and "is not a PNG, JPEG" in refused.json()["error"]
    # Starts like a PNG but is not one: only the kernel decodes images, at the first call.
    corrupt = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10).decode()
    opened = requests.post(f"{base_url}/sessions/open", json={"session_id": "img", "images": [corrupt]}, timeout=60)
    assert opened.status_code == 200
    first = requests.post(f"{base_url}/jupyter_sandbox", json={"session_id": "img", "code": "1"}, timeout=60)
    assert first.status_code == 400 and "could not load the session images" in first.json()["error"]
    requests.post(f"{base_url}/sessions/close", json={"session_id": "img"}, timeout=10)


def test_unknown_route_is_a_json_404(base_url: str) -> None:
    response = requests.get(f"{base_url}/nowhere", timeout=5)
    assert response.status_code == 404 and "error" in response.json()


def test_client_raises_on_its_own_malformed_requests(client: SandboxClient, session_id: str) -> None:
    with pytest.raises(SandboxRequestError, match="timeout"):
        client.execute(session_id, "1", timeout=-5)


def test_every_connection_of_a_burst_is_answered(base_url: str) -> None:
    """Hundreds of clients connecting at once (no keep-alive): none is reset or refused."""
    host, port = "127.0.0.1", int(base_url.rsplit(":", 1)[1])
    barrier = threading.Barrier(256)

    def one_client(_: int) -> int:
        connection = http.client.HTTPConnection(host, port, timeout=60)
        barrier.wait()
        try:
            connection.request("GET", "/health", headers={"Connection": "close"})
            return connection.getresponse().status
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=256) as executor:
        statuses = list(executor.map(one_client, range(256)))
    assert statuses == [200] * 256
