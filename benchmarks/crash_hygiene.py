"""Issue 30, item 9, re-run: what a crashed RL run leaves behind, and what ``--resume`` makes of it.

    .venv/bin/python benchmarks/crash_hygiene.py [--parts local resume verl] [--out DIR]

1. ``kill -9`` of the trainer (local engine, tiny model, live services) once its second
   checkpoint is written: which of the processes it started (reward server, redis-server,
   sandbox server and kernels) are still running, how long the rest took to go, which ports
   still answer. Part ``verl``: the same for the verl engine once Ray is up (slow: Ray and
   verl start-up).
2. The crash damage the operator found, applied to that run folder: a torn last line in
   ``metrics.jsonl`` and in ``trajectories.jsonl``, and the newest checkpoint's adapter bytes
   overwritten (same size). ``train.py --resume`` is run on it: what it says about each, how
   many seconds after start the damaged adapter is named, where it resumed, and how it ended.

Figures depend on the machine and its load; print them with the machine they came from.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from deepeyes.cli import parse_cli
from deepeyes.paths import REPO_ROOT, SAMPLE_DIR, TINY_MODEL_DIR
from deepeyes.rl.checkpoint import list_checkpoints, verify_checkpoint
from deepeyes.utils.processes import port_is_open

TRAIN = REPO_ROOT / "reinforcement_learning" / "train.py"
CONFIGS = REPO_ROOT / "reinforcement_learning" / "configs"
MARK = "DEEPEYES_CRASH_BENCH"


@dataclass(frozen=True)
class BenchArguments:
    out: str | None = field(default=None, metadata={"help": "folder for the runs (default: a temporary one, removed after)"})
    parts: list[str] = field(
        default_factory=lambda: ["local", "resume"],
        metadata={"help": "local: kill -9 of a local-engine run; resume: damage that run and resume it (needs local); "
                          "verl: kill -9 of a verl-engine run once Ray is up (slow)", "nargs": "+"},
    )
    timeout_s: float = field(default=1200.0, metadata={"help": "limit for each run to reach the point where it is killed"})


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class Watch:
    """A command with a mark in its environment; its descendants and their listening ports are recorded."""

    def __init__(self, argv: list[str], log: Path, cwd: Path):
        self.mark = os.urandom(8).hex()
        with log.open("wb") as handle:
            self.process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT), MARK: self.mark})
        self.log = log
        self.seen: dict[tuple[int, float], psutil.Process] = {}
        self.ports: set[int] = set()

    def refresh(self) -> list[str]:
        lines = []
        with contextlib.suppress(psutil.NoSuchProcess):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    self.seen.setdefault((child.pid, child.create_time()), child)
                    lines.append(" ".join(child.cmdline()))
                    self.ports |= {c.laddr.port for c in child.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
        return lines

    def wait_for(self, ready, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready(self.refresh()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"no {what} (exit code {self.process.poll()}); log tail:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)

    def marked(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter():
            with contextlib.suppress(psutil.Error):
                if process.environ().get(MARK) == self.mark and _alive(process):
                    found.append(process)
        return found

    def kill_and_watch(self, grace_s: float = 30.0) -> None:
        self.refresh()
        services = {key: p for key, p in self.seen.items() if _alive(p)}
        print(f"  processes it had started: {len(services)}; listening ports: {sorted(self.ports)}")
        for process in services.values():
            with contextlib.suppress(psutil.Error):
                print(f"    pid {process.pid:>7}  {process.memory_info().rss / 2**20:7.0f} MB  {' '.join(process.cmdline())[:110]}")
        killed = time.monotonic()
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        gone_after: dict[int, float] = {}
        while time.monotonic() - killed < grace_s:
            for process in services.values():
                if process.pid not in gone_after and not _alive(process):
                    gone_after[process.pid] = time.monotonic() - killed
            if len(gone_after) == len(services) and not self.marked():
                break
            time.sleep(0.05)
        left = [p for p in services.values() if _alive(p)] + [p for p in self.marked() if p.pid not in {q.pid for q in services.values()}]
        open_ports = sorted(port for port in self.ports if port_is_open("127.0.0.1", port))
        print(f"  after kill -9: {len(left)} still running {grace_s:.0f} s later; ports still answering: {open_ports or 'none'}")
        if gone_after:
            print(f"  the last one went {max(gone_after.values()):.2f} s after the kill (median {sorted(gone_after.values())[len(gone_after) // 2]:.2f} s)")
        for process in left:
            with contextlib.suppress(psutil.Error):
                print(f"    SURVIVOR pid {process.pid} {' '.join(process.cmdline())[:110]}")
                process.kill()


def local_argv(output: Path) -> list[str]:
    overrides = [
        f"model.base_model={TINY_MODEL_DIR}", "model.sft_lora_path=null",
        f"data.rl_data_path={SAMPLE_DIR / 'rl' / 'train.parquet'}",
        f"tool.search_cache_path={SAMPLE_DIR / 'image_search' / 'cache.json'}",
        f"output.dir={output}", "data.batch_size=2", "rollout.n=2", "rollout.max_turns=2", "rollout.max_new_tokens=16",
        "training.batch_size=2", "training.gradient_accumulation_steps=1", "trainer.eval_steps=0", "trainer.total_steps=3",
        "output.save_steps=1", "output.save_total_limit=3", "algorithm.filter_groups.enable=false",
    ]  # fmt: skip
    argv = [sys.executable, str(TRAIN), "--config", str(CONFIGS / "deepeyes_rl.yaml"), "--no_progress"]
    for override in overrides:
        argv += ["--set", override]
    return argv


def kill_local(root: Path, args: BenchArguments) -> tuple[Path, list[str]]:
    print("1. kill -9 of the trainer, local engine, after its step-2 checkpoint")
    output = root / "local"
    argv = local_argv(output)
    watch = Watch(argv, root / "local.log", REPO_ROOT)
    started = time.monotonic()
    watch.wait_for(lambda lines: len(list_checkpoints(output)) >= 2, args.timeout_s, "step-2 checkpoint")
    print(f"  killed {time.monotonic() - started:.0f} s after start")
    watch.kill_and_watch()
    return output, argv


def kill_verl(root: Path, args: BenchArguments) -> None:
    print("1b. kill -9 of the trainer, verl engine, once Ray is up")
    argv = [sys.executable, str(TRAIN), "--config", str(CONFIGS / "deepeyes_rl_verl_cpu.yaml"), "--set", f"output.dir={root / 'verl'}",
            "--set", "model.sft_lora_path=null"]
    watch = Watch(argv, root / "verl.log", REPO_ROOT)
    needed = ("deepeyes.rewards.server", "verl.trainer.main_ppo", "gcs_server", "raylet")
    watch.wait_for(lambda lines: all(any(n in line for line in lines) for n in needed), args.timeout_s, "Ray")
    watch.kill_and_watch()


def damage_and_resume(output: Path, argv: list[str], root: Path) -> None:
    print("2. the crash damage, then train.py --resume")
    metrics, trajectories = output / "metrics.jsonl", output / "trajectories.jsonl"
    with metrics.open("ab") as handle:
        handle.write(b'{"step": 3, "critic/score/mean": -0.2')
    with trajectories.open("ab") as handle:
        handle.write(b'{"id": "torn", "question": "How many yellow squ')
    newest = list_checkpoints(output)[-1]
    adapter = newest / "policy" / "adapter_model.safetensors"
    data = bytearray(adapter.read_bytes())
    data[-256:] = b"\x7f" * 256
    adapter.write_bytes(bytes(data))
    print(f"  torn last lines appended to {metrics.name} and {trajectories.name}; {adapter.relative_to(output)} overwritten (same size)")
    log = root / "resume.log"
    started = time.monotonic()
    first_seen: dict[str, float] = {}
    patterns = {
        "metrics.jsonl torn line": re.compile(r"metrics\.jsonl:\d+: torn last line.*"),
        "trajectories.jsonl torn line": re.compile(r"trajectories\.jsonl:\d+: torn last line.*"),
        "damaged adapter": re.compile(r"adapter_model\.safetensors: SHA-256 differs.*"),
        "fall-back": re.compile(r"resuming from .*newest intact checkpoint.*"),
        "model loaded (for order)": re.compile(r"policy: .*trainable parameters.*"),
        "JSONDecodeError": re.compile(r".*JSONDecodeError.*"),
        "inf/nan": re.compile(r".*probability tensor contains.*"),
    }
    with log.open("wb") as handle:
        process = subprocess.Popen([*argv, "--resume"], stdout=handle, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    while process.poll() is None:
        text = log.read_text(errors="replace")
        for name, pattern in patterns.items():
            if name not in first_seen and pattern.search(text):
                first_seen[name] = time.monotonic() - started
        time.sleep(0.2)
    text = log.read_text(errors="replace")
    for name, pattern in patterns.items():
        match = pattern.search(text)
        when = first_seen.get(name)
        seen_at = f"{when:5.1f} s" if when is not None else "  end  " if match else "   -   "
        shown = match.group(0)[:150] if match else "(not in the log)"
        print(f"  {name:28s} {seen_at}  {shown}")
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    print(f"  exit code {process.returncode} after {time.monotonic() - started:.0f} s; metrics.jsonl steps {steps}; "
          f"checkpoints {[(c.name, verify_checkpoint(c)) for c in list_checkpoints(output)]}")


def main(argv: list[str] | None = None) -> None:
    (args,) = parse_cli([BenchArguments], argv, prog="benchmarks/crash_hygiene.py", description=__doc__.split("\n\n")[0])
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    with contextlib.ExitStack() as stack:
        root = Path(args.out) if args.out else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="crash-bench-")))
        root.mkdir(parents=True, exist_ok=True)
        unknown = set(args.parts) - {"local", "resume", "verl"}
        if unknown:
            raise SystemExit(f"--parts: unknown part(s) {sorted(unknown)}; choose from local, resume, verl")
        if "local" in args.parts or "resume" in args.parts:
            output, train_argv = kill_local(root, args)
            if "resume" in args.parts:
                damage_and_resume(output, train_argv, root)
        if "verl" in args.parts:
            kill_verl(root, args)


if __name__ == "__main__":
    main()
