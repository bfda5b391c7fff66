"""Hub ids wherever a model or adapter path is accepted: inference policy, RL loading, evaluation.

A stand-in hub on loopback serves the tiny model's own files (and a LoRA adapter made for
it); every stage resolves the ids through the real hub client in a subprocess whose
``HF_ENDPOINT`` points at the stand-in and whose ``HF_HOME`` is a temporary folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hub_standin import RunningHub, StandinHub

from deepeyes.paths import REPO_ROOT
from deepeyes.rl.config import RLConfig

MODEL_ID = "deepeyes-test/tiny-qwen2.5-vl"
ADAPTER_ID = "deepeyes-test/tiny-sft-lora"


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.startswith(".")}


@pytest.fixture(scope="module")
def model_hub(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> StandinHub:
    """The tiny model and a LoRA adapter for it, as hub repositories."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2_5_VLForConditionalGeneration

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir, dtype=torch.float32)
    adapter = get_peft_model(model, LoraConfig(r=2, lora_alpha=4, target_modules=r".*language_model.*\.q_proj$"))
    adapter_dir = tmp_path_factory.mktemp("adapter")
    adapter.save_pretrained(adapter_dir)
    hub = StandinHub()
    hub.add("model", MODEL_ID, _files(tiny_model_dir))
    hub.add("model", ADAPTER_ID, _files(adapter_dir))
    return hub


def _env(hf_home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_OFFLINE", "MODEL_PATH", "ADAPTER_PATH", "API_BASE"))}
    env.update(HF_HOME=str(hf_home), PYTHONPATH=str(REPO_ROOT), HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return env


def _python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False)


def test_hf_policy_and_rl_loading_take_hub_ids(model_hub: StandinHub, tmp_path: Path) -> None:
    code = f"""
        import json
        from deepeyes.chat import Message
        from deepeyes.policies.hf import HFPolicy
        from deepeyes.rl.policy_model import load_base_with_sft
        policy = HFPolicy("{MODEL_ID}", adapter_path="{ADAPTER_ID}", max_new_tokens=3)
        text = policy.generate([Message(role="user", content="hello")]).text
        model, _ = load_base_with_sft("{MODEL_ID}", "{ADAPTER_ID}")
        print(json.dumps({{"peft": type(policy.model).__name__, "generated": isinstance(text, str),
                           "merged": type(model).__name__, "source": str(policy.model.base_model.model.name_or_path)}}))
    """
    with RunningHub(model_hub) as running:
        result = _python(code, _env(tmp_path / "hf", HF_ENDPOINT=running.endpoint), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["peft"].startswith("PeftModel") and report["generated"]  # the hub adapter is applied
    assert report["merged"] == "Qwen2_5_VLForConditionalGeneration"  # the adapter merged, no PEFT wrapper left
    assert "models--deepeyes-test--tiny-qwen2.5-vl" in report["source"]  # loaded from the hub cache's own layout
    assert any(r.startswith(f"GET /api/models/{ADAPTER_ID}/revision/") for r in model_hub.requests)


def test_offline_and_not_cached_names_the_setting_and_the_fix(tmp_path: Path) -> None:
    code = """
        from deepeyes.policies.hf import HFPolicy
        try:
            HFPolicy("honglyhly/DeepEyesV2_7B_1031")
        except FileNotFoundError as exc:
            print(exc)
    """
    result = _python(code, _env(tmp_path / "hf", HF_HUB_OFFLINE="1"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model_path=honglyhly/DeepEyesV2_7B_1031: no such local path" in result.stdout
    assert "HF_HUB_OFFLINE is set" in result.stdout and "hf download honglyhly/DeepEyesV2_7B_1031" in result.stdout


def test_run_eval_takes_a_hub_model_path(model_hub: StandinHub, tmp_path: Path) -> None:
    env = _env(
        tmp_path / "hf", MODEL_PATH=MODEL_ID, DATASETS="DeepEyesMini_Visual", MAX_SAMPLES="1", USE_TOOLS="False",
        MAX_TURNS="1", MAX_NEW_TOKENS="4", OUTPUT_REPORT=str(tmp_path / "eval"),
    )
    with RunningHub(model_hub) as running:
        env["HF_ENDPOINT"] = running.endpoint
        result = subprocess.run(
            ["bash", str(REPO_ROOT / "evaluation" / "run_eval.sh"), "--no_report"],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600, check=False,
        )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    results = json.loads((tmp_path / "eval" / "eval_results.json").read_text())
    trajectories = (tmp_path / "eval" / "trajectories" / "DeepEyesMini_Visual.jsonl").read_text().splitlines()
    assert len(trajectories) == 1
    assert "DeepEyesMini_Visual" in json.dumps(results)


def test_run_eval_offline_and_not_cached_fails_naming_model_path(tmp_path: Path) -> None:
    env = _env(tmp_path / "hf", MODEL_PATH="Qwen/Qwen2.5-VL-7B-Instruct", HF_HUB_OFFLINE="1", OUTPUT_REPORT=str(tmp_path / "eval"))
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "evaluation" / "run_eval.sh"), "--no_report"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300, check=False
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "MODEL_PATH=Qwen/Qwen2.5-VL-7B-Instruct" in output and "HF_HUB_OFFLINE is set" in output


def test_rl_config_locate_keeps_hub_ids_for_the_loader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = RLConfig()
    assert config.locate("honglyhly/DeepEyesV2_RL") == Path("honglyhly/DeepEyesV2_RL")  # not cwd/honglyhly/...
    assert config.locate("Qwen/Qwen2.5-VL-7B-Instruct@main") == Path("Qwen/Qwen2.5-VL-7B-Instruct@main")
    (tmp_path / "outputs" / "rl").mkdir(parents=True)
    assert config.locate("outputs/rl") == (tmp_path / "outputs" / "rl")  # an existing local path wins
    assert config.locate("data/sample/rl/train.parquet") == tmp_path / "data/sample/rl/train.parquet"  # not hub-shaped
    assert config.resolve("honglyhly/DeepEyesV2_RL") == tmp_path / "honglyhly/DeepEyesV2_RL"  # plain paths keep the cwd rule
