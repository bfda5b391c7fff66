"""Builders for small SFT inputs: images on disk, seed records covering every tool, and
ShareGPT records, so the converter is exercised without the generated sample data.
(A uniquely named module: ``conftest`` is a name every test folder uses.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image

from deepeyes.prompts import system_prompt, user_prompt

GOLDEN_DIR = Path(__file__).with_name("golden")


def write_image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (64, 48)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return str(path)


def write_fixture_images(root: Path) -> None:
    """The images :func:`seed_records` refers to, each a distinct flat colour."""
    for name, color in [("q1", (200, 0, 0)), ("q1_crop", (180, 0, 0)), ("q2", (0, 200, 0)), ("q2_thumb", (0, 180, 0)), ("q3", (0, 0, 200))]:
        write_image(root / "images" / f"{name}.png", color)


def seed_records() -> list[dict[str, Any]]:
    """One record per tool, one without tools; paths are relative to the data root."""
    return [
        {
            "id": "count-1",
            "image": "images/q1.png",
            "text": "How many red squares are there?",
            "thoughts": ["I will count the red regions with code.", "The code found 3 squares."],
            "tool_calls": [
                {
                    "tool": "code_execution",
                    "input": "print(3)",
                    "output": "3\n",
                    "images": ["images/q1_crop.png"],
                }
            ],
            "answer": "3",
        },
        {
            "id": "search-1",
            "image": "images/q2.png",
            "text": "Who designed this tower?",
            "thoughts": ["I need to look the tower up.", "The result names the designer.", "So it is Ann Smith."],
            "tool_calls": [
                {"tool": "image_search", "input": "", "output": "1. <image> Tall Tower - Wiki", "images": ["images/q2_thumb.png"]},
                {"tool": "text_search", "input": "Tall Tower designer", "output": "1. [Tall Tower](http://t.example)\nDesigned by Ann Smith."},
            ],
            "answer": "Ann Smith",
        },
        {"id": "direct-1", "image": "images/q3.png", "text": "What colour is the background?", "tool_calls": [], "answer": "blue"},
    ]


def sharegpt_record(record_id: str, image: str) -> dict[str, Any]:
    return {
        "id": record_id,
        "messages": [
            {"role": "system", "content": system_prompt()},
            {"role": "user", "content": user_prompt("What is shown?")},
            {"role": "assistant", "content": "<think>\nA plain square.\n</think>\n<answer>a square</answer>"},
        ],
        "images": [image],
    }


def load_golden(name: str) -> Any:
    return json.loads((GOLDEN_DIR / name).read_text())
