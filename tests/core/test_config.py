"""Strict config loading: unknown or ill-typed keys fail naming the key and the file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from deepeyes.config import ConfigError, from_dict, load_config, to_dict


@dataclass
class Inner:
    port: int = 6379
    hosts: list[str] = field(default_factory=lambda: ["127.0.0.1"])


@dataclass
class Outer:
    name: str
    ratio: float = 0.5
    mode: Literal["local", "http"] = "local"
    inner: Inner = field(default_factory=Inner)
    path: Path | None = None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_valid_document_builds_nested_dataclasses(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "name: x\nratio: 2\ninner:\n  port: 1\n  hosts: [a, b]\npath: /tmp/q\n"), Outer)
    assert cfg == Outer(name="x", ratio=2.0, inner=Inner(port=1, hosts=["a", "b"]), path=Path("/tmp/q"))
    assert isinstance(cfg.ratio, float)
    assert to_dict(cfg)["inner"] == {"port": 1, "hosts": ["a", "b"]}


def test_unknown_nested_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\ninner:\n  prot: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, Outer)
    assert "inner.prot" in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("name: x\ninner:\n  port: '6379'\n", "inner.port"),
        ("name: x\nratio: true\n", "ratio"),
        ("name: 3\n", "name"),
        ("name: x\nmode: cloud\n", "mode"),
        ("name: x\ninner:\n  hosts: a\n", "inner.hosts"),
        ("ratio: 1.0\n", "name"),
    ],
)
def test_ill_typed_or_missing_values_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(write(tmp_path, text), Outer)


def test_section_selects_one_top_level_key(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "other: 1\ninner:\n  port: 7\n"), Inner, section="inner")
    assert cfg.port == 7


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "absent.yaml", Outer)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "name: [unclosed\n"), Outer)


def test_from_dict_rejects_non_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping"):
        from_dict(Outer, ["name"])


def test_repository_tool_manager_config_loads_and_a_typo_names_key_and_file(tmp_path: Path) -> None:
    from deepeyes.paths import TOOL_MANAGER_CONFIG
    from deepeyes.tool_manager import ToolManagerConfig

    config = load_config(TOOL_MANAGER_CONFIG, ToolManagerConfig)
    assert config.sandbox.default_timeout_s == 30.0 and config.search.text.backend == "local"
    broken = tmp_path / "tools.yaml"
    broken.write_text(TOOL_MANAGER_CONFIG.read_text().replace("pool_size:", "pool_sise:"))
    with pytest.raises(ConfigError, match=r"'sandbox\.pool_sise'") as err:
        load_config(broken, ToolManagerConfig)
    assert str(broken) in str(err.value)
    wrong_type = tmp_path / "tools2.yaml"
    wrong_type.write_text(TOOL_MANAGER_CONFIG.read_text().replace("top_k: 5", "top_k: five"))
    with pytest.raises(ConfigError, match=r"'search\.text\.top_k'"):
        load_config(wrong_type, ToolManagerConfig)
