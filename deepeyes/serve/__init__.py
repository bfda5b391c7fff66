"""The inference service: an OpenAI-compatible ``/v1/chat/completions`` that runs the whole agent loop.

The application layer beside the Gradio demo (DESIGN §6): any OpenAI client sends a
question with images and gets the final answer, with the full trajectory and per-tool
call counts alongside. Tools run on the server, one sandbox session per request, and
concurrent requests share one model through the RL engine's batching policy.

    python -m deepeyes.serve --model_path data/models/tiny-qwen2.5-vl --port 8000
"""

from deepeyes.serve.app import create_app
from deepeyes.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]
