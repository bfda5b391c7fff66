"""A loopback Flask stand-in for web-search APIs, answering in each provider's documented shape."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from flask import Flask, Response, jsonify, request

STANDIN_KEY = "test-key-123"


@dataclass
class StandIn:
    """A loopback server speaking each provider's documented response shape.

    ``failures`` is a queue of status codes (or ``"malformed"``/``"not-object"``/``"sleep"``) served
    before normal answers; ``requests`` records what each call sent.
    """

    base_url: str
    failures: list = field(default_factory=list)
    requests: list = field(default_factory=list)
    retry_after: str | None = None

    def reset(self) -> None:
        self.failures.clear()
        self.requests.clear()
        self.retry_after = None


def _items(query: str, count: int) -> list[tuple[str, str, str]]:
    return [(f"{query} result {i}", f"https://web.example/{i}", f"About {query}, page {i}.") for i in range(count)]


def build_app(state: StandIn) -> Flask:
    app = Flask("search-standin")

    def scripted() -> Response | None:
        state.requests.append(
            {"path": request.path, "args": dict(request.args), "json": request.get_json(silent=True), "headers": dict(request.headers)}
        )
        if not state.failures:
            return None
        failure = state.failures.pop(0)
        if failure == "malformed":
            return Response("<html>gateway hiccup</html>", status=200, mimetype="text/html")
        if failure == "not-object":
            return jsonify(["a", "list"])
        if failure == "sleep":
            time.sleep(1.0)
            return None
        headers = {"Retry-After": state.retry_after} if state.retry_after else {}
        return Response(json.dumps({"error": "busy"}), status=int(failure), headers=headers, mimetype="application/json")

    @app.get("/v7.0/search")
    def bing() -> Response:
        if (reply := scripted()) is not None:
            return reply
        if request.headers.get("Ocp-Apim-Subscription-Key") != STANDIN_KEY:
            return Response(status=401)
        items = _items(request.args["q"], int(request.args.get("count", 10)))
        values = [
            {"id": f"id{i}", "name": t, "url": u, "snippet": s, "dateLastCrawled": "2024-05-01T10:00:00.0000000Z"}
            for i, (t, u, s) in enumerate(items)
        ]
        return jsonify(
            {
                "_type": "SearchResponse",
                "queryContext": {"originalQuery": request.args["q"]},
                "webPages": {"totalEstimatedMatches": 1000, "value": values},
            }
        )

    @app.post("/search")
    def serper() -> Response:
        if (reply := scripted()) is not None:
            return reply
        if request.headers.get("X-API-KEY") != STANDIN_KEY:
            return Response(status=401)
        body = request.get_json()
        items = _items(body["q"], int(body.get("num", 10)))
        organic = [
            {"title": t, "link": u, "snippet": s, "position": i + 1, **({"date": "Mar 3, 2024"} if i == 0 else {})}
            for i, (t, u, s) in enumerate(items)
        ]
        return jsonify({"searchParameters": {"q": body["q"], "type": "search"}, "organic": organic})

    @app.get("/search.json")
    def serpapi() -> Response:
        if (reply := scripted()) is not None:
            return reply
        if request.args.get("api_key") != STANDIN_KEY:
            return jsonify({"error": "Invalid API key."}), 401
        items = _items(request.args["q"], int(request.args.get("num", 10)))
        organic = [
            {"position": i + 1, "title": t, "link": u, "displayed_link": u, "snippet": s, "date": "Jan 2, 2023"}
            for i, (t, u, s) in enumerate(items)
        ]
        return jsonify({"search_metadata": {"status": "Success"}, "organic_results": organic})

    @app.post("/v2/ai_search/web_search")
    def baidu() -> Response:
        if (reply := scripted()) is not None:
            return reply
        if request.headers.get("Authorization") != f"Bearer {STANDIN_KEY}":
            return jsonify({"code": 216003, "message": "Authentication error"}), 401
        body = request.get_json()
        query = body["messages"][-1]["content"]
        count = int(body["resource_type_filter"][0]["top_k"])
        references = [
            {"id": i + 1, "url": u, "title": t, "date": "2025-02-01 08:00:00", "content": s, "type": "web", "website": "web.example"}
            for i, (t, u, s) in enumerate(_items(query, count))
        ]
        return jsonify({"request_id": "abc", "references": references})

    return app
