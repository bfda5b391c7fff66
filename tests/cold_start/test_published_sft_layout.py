"""The published DeepEyesV2_SFT layout, by hub name: JSON parts plus zipped images, trained as is.

The stand-in hub on loopback serves a miniature of the data set; ``run_cold_start.sh``
resolves ``DATA_PATH=honglyhly/DeepEyesV2_SFT`` through the real hub client, unpacks the
images once and trains on the tiny model, with no conversion step by the user.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
from hub_standin import RunningHub, StandinHub
from PIL import Image
from sft_fixtures import sharegpt_record

from deepeyes.paths import REPO_ROOT


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _published_sft() -> dict[str, bytes]:
    images = io.BytesIO()
    with zipfile.ZipFile(images, "w") as bundle:
        for i, colour in enumerate([(200, 0, 0), (0, 200, 0), (0, 0, 200)]):
            bundle.writestr(f"images/sample_{i}.png", _png(colour))
    parts = {
        "json/sft_part_0.json": [sharegpt_record("r0", "images/sample_0.png"), sharegpt_record("r1", "images/sample_1.png")],
        "json/sft_part_1.json": [sharegpt_record("r2", "images/sample_2.png")],
    }
    return {"images.zip": images.getvalue(), **{name: json.dumps(records).encode() for name, records in parts.items()}}


@pytest.mark.slow
def test_hub_name_trains_on_the_published_layout(tmp_path: Path, tiny_model_dir: Path) -> None:
    hub = StandinHub()
    hub.add("dataset", "honglyhly/DeepEyesV2_SFT", _published_sft())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE", "DATA_PATH", "OUTPUT_DIR", "RECIPE"))}
    with RunningHub(hub) as running:
        env.update(
            HF_HOME=str(tmp_path / "hf"),
            HF_ENDPOINT=running.endpoint,
            DATA_PATH="honglyhly/DeepEyesV2_SFT",
            MODEL_NAME_OR_PATH=str(tiny_model_dir),
            OUTPUT_DIR=str(tmp_path / "run"),
            NUM_TRAIN_EPOCHS="1",
            LOGGING_STEPS="1",
        )
        result = subprocess.run(
            ["bash", str(REPO_ROOT / "cold_start" / "run_cold_start.sh")],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900, check=False,
        )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "data: 3 of 3 samples kept" in result.stdout  # both JSON parts, every zipped image found
    assert (tmp_path / "run" / "model.safetensors").is_file()  # the tiny default fine-tunes fully
    (snapshot,) = (tmp_path / "hf" / "hub" / "datasets--honglyhly--DeepEyesV2_SFT" / "snapshots").iterdir()
    # Unpacked once, outside the hub cache's own layout.
    assert (tmp_path / "hf" / "deepeyes" / "extracted" / "datasets--honglyhly--DeepEyesV2_SFT" / snapshot.name / "images" / "sample_2.png").is_file()
