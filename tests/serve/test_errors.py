"""Every refused request gets OpenAI's error shape and the right status; image sources that are allowed work."""

from __future__ import annotations

import base64
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image
from serve_helpers import Served, serve

from deepeyes.images import to_data_url, to_png_bytes
from deepeyes.serve import ServeConfig
from deepeyes.tool_manager import ToolManager

RED = to_data_url(Image.new("RGB", (64, 48), "red"))


def ask(question: str, *image_urls: str) -> list[dict]:
    parts = [{"type": "image_url", "image_url": {"url": url}} for url in image_urls]
    return [{"role": "user", "content": [*parts, {"type": "text", "text": question}]}]


@pytest.fixture()
def client(scripted: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=scripted.base_url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def image_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real HTTP server on loopback serving one PNG (``/red.png``) and one non-image (``/notes.txt``)."""
    root = tmp_path_factory.mktemp("site")
    (root / "red.png").write_bytes(to_png_bytes(Image.new("RGB", (30, 20), "red")))
    (root / "notes.txt").write_text("not an image", encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def assert_openai_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == code and error["message"]


def test_malformed_json_is_400_in_openai_shape(scripted: Served) -> None:
    response = httpx.post(f"{scripted.base_url}/chat/completions", content=b'{"model": "deepeyes", "messages": [', headers={"content-type": "application/json"})
    assert_openai_error(response, 400, "invalid_json")
    response = httpx.post(f"{scripted.base_url}/chat/completions", json={"model": "deepeyes", "messages": "hello"})
    assert_openai_error(response, 400, "invalid_request")
    assert response.json()["error"]["param"] == "messages"


def test_unknown_model_is_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-4o", messages=ask("plain", RED))
    assert caught.value.code == "model_not_found" and caught.value.param == "model"


def test_undecodable_image_is_400_naming_the_part(client: openai.OpenAI) -> None:
    garbage = "data:image/png;base64," + base64.b64encode(b"definitely not a png").decode()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="deepeyes", messages=ask("plain", RED, garbage))
    assert caught.value.code == "invalid_image"
    assert caught.value.param == "messages[0].content[1].image_url"
    # decodable, but no Qwen2.5-VL processor takes it: refused before it could fail a whole batch
    sliver = to_data_url(Image.new("RGB", (402, 2), "red"))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="deepeyes", messages=ask("plain", sliver))
    assert caught.value.code == "invalid_image" and "aspect ratio" in caught.value.message


def test_too_many_images_is_400(client: openai.OpenAI, scripted: Served) -> None:
    assert scripted.config.max_images == 3
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="deepeyes", messages=ask("plain", *[RED] * 4))
    assert caught.value.code == "too_many_images"
    ok = client.chat.completions.create(model="deepeyes", messages=ask("plain", *[RED] * 3))
    assert len(ok.model_extra["trajectory"]["images"]) == 3


def test_unknown_tool_in_switches_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="deepeyes", messages=ask("plain", RED), extra_body={"disable_tools": ["telepathy"]})
    assert caught.value.param == "disable_tools"


def test_request_too_large_is_413(serve_tools: ToolManager, script_file: Path) -> None:
    with serve(ServeConfig(script_path=str(script_file), max_request_mb=0.01), serve_tools) as small:
        client = openai.OpenAI(base_url=small.base_url, api_key="unused", max_retries=0)
        big = to_data_url(Image.effect_noise((128, 128), 64).convert("RGB"))  # noise does not compress below ~10 KiB
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="deepeyes", messages=ask("plain", big))
        assert caught.value.status_code == 413 and caught.value.code == "request_too_large"
        # the same limit holds for a body sent in chunks without a Content-Length
        chunks = (piece for piece in [b'{"model": "deepeyes", "messages": [', b" " * 20000, b"]}"])
        response = httpx.post(f"{small.base_url}/chat/completions", content=chunks)
        assert_openai_error(response, 413, "request_too_large")
        assert client.chat.completions.create(model="deepeyes", messages=ask("plain", RED)).choices[0].message.content == "42"


@pytest.fixture(scope="module")
def trusting_private(serve_tools: ToolManager, script_file: Path) -> Iterator[Served]:
    """The scripted service allowed to fetch images from loopback (where the test site runs)."""
    with serve(ServeConfig(script_path=str(script_file), allow_private_image_urls=True), serve_tools) as served:
        yield served


def test_http_image_urls_are_fetched_and_bad_ones_refused(trusting_private: Served, image_site: str) -> None:
    client = openai.OpenAI(base_url=trusting_private.base_url, api_key="unused", max_retries=0, timeout=120)
    completion = client.chat.completions.create(model="deepeyes", messages=ask("figure", f"{image_site}/red.png"))
    assert "(30, 20)" in completion.model_extra["trajectory"]["turns"][0]["observation"]["text"]
    with pytest.raises(openai.BadRequestError) as missing:
        client.chat.completions.create(model="deepeyes", messages=ask("plain", f"{image_site}/missing.png"))
    assert missing.value.code == "invalid_image_url"
    with pytest.raises(openai.BadRequestError) as not_image:
        client.chat.completions.create(model="deepeyes", messages=ask("plain", f"{image_site}/notes.txt"))
    assert not_image.value.code == "invalid_image"


def test_local_paths_only_when_the_service_allows_them(client: openai.OpenAI, tmp_path: Path, serve_tools: ToolManager, script_file: Path) -> None:
    path = tmp_path / "blue.png"
    Image.new("RGB", (20, 10), "blue").save(path)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="deepeyes", messages=ask("plain", str(path)))
    assert refused.value.code == "invalid_image_url"
    with serve(ServeConfig(script_path=str(script_file), allow_local_images=True), serve_tools) as trusting:
        local = openai.OpenAI(base_url=trusting.base_url, api_key="unused", max_retries=0)
        for url in (str(path), path.as_uri()):
            completion = local.chat.completions.create(model="deepeyes", messages=ask("figure", url))
            assert "(20, 10)" in completion.model_extra["trajectory"]["turns"][0]["observation"]["text"]
