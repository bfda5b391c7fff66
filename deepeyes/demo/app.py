"""The Gradio page (chat + trajectory viewer) and the ``demo/gradio_demo.py`` command line.

The handlers here only move values between widgets and the session/viewer modules; the
page runs on Gradio's queue, so concurrent users wait their turn instead of failing.
"""

from __future__ import annotations

import csv
import logging
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from deepeyes.cli import LoggingArguments, parse_cli
from deepeyes.demo.render import CSS, message_html, render_trajectory
from deepeyes.demo.session import (
    ChatRun,
    ChatSessions,
    RunSettings,
    prepare_input,
)
from deepeyes.demo.tools import tool_names
from deepeyes.demo.viewer import (
    CORRECTNESS,
    MAX_ERRORS_SHOWN,
    SUMMARY_HEADERS,
    TrajectoryFilter,
    choice_label,
    facets,
    image_reader,
    load_trajectories,
    summary_row,
)
from deepeyes.model_args import (
    ALIASES,
    ModelArguments,
    ToolArguments,
    build_policy,
    build_tool_manager,
)
from deepeyes.paths import SAMPLE_DIR
from deepeyes.policies.base import Policy
from deepeyes.tool_manager import ToolManager
from deepeyes.trajectory import Trajectory, write_jsonl
from deepeyes.videos import DEFAULT_FPS, DEFAULT_MAX_FRAMES

logger = logging.getLogger(__name__)

EXAMPLE_FILES = ("eval/DeepEyesMini_Visual.tsv", "eval/DeepEyesMini_Search.tsv")


@dataclass
class DemoOptions:
    """Page defaults and limits (the command line fills them)."""

    max_turns: int = 8
    temperature: float = 0.0
    max_new_tokens: int = 512
    #: The tool switches' starting positions (the command line's --disable_tools and --force_no_tool).
    disabled_tools: tuple[str, ...] = ()
    force_no_tool: bool = False
    concurrency: int = 2  # questions answered at once; further users queue
    model_label: str = "tiny Qwen2.5-VL"
    examples: list[list[Any]] = field(default_factory=list)
    #: Video sampling's starting values, and the most frames per video the slider allows.
    video_fps: float = DEFAULT_FPS
    video_max_frames: int = DEFAULT_MAX_FRAMES
    video_frame_limit: int = 64
    #: Folders the viewer may read images from when an uploaded file names paths (deepeyes.demo.viewer.image_reader).
    viewer_image_dirs: tuple[str, ...] = (str(SAMPLE_DIR),)


def sample_examples(sample_dir: Path = SAMPLE_DIR, per_category: int = 1) -> list[list[Any]]:
    """``[[image paths], question]`` pairs from the sample evaluation sets, one per category.

    The sample images are written beside the TSVs as ``images/<set>-<index:05d>.png``
    (``deepeyes.data.synth``); rows whose image file is missing are skipped.
    """
    examples: list[list[Any]] = []
    csv.field_size_limit(1 << 30)
    for name in EXAMPLE_FILES:
        tsv = sample_dir / name
        if not tsv.is_file():
            continue
        prefix = "eval_visual" if "Visual" in name else "eval_search"
        seen: dict[str, int] = {}
        with tsv.open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle, delimiter="\t"):
                category = row.get("category", "")
                image = sample_dir / "images" / f"{prefix}-{int(row['index']):05d}.png"
                if seen.get(category, 0) >= per_category or not image.is_file():
                    continue
                seen[category] = seen.get(category, 0) + 1
                examples.append([[str(image)], row["question"]])
    return examples


def _session_id(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", None) or "anonymous"


def build_app(policy: Policy, tool_manager: ToolManager | None, options: DemoOptions | None = None) -> gr.Blocks:
    """The whole page. ``tool_manager`` None: no tools at all (every question is answered directly)."""
    options = options or DemoOptions()
    sessions = ChatSessions()
    downloads = Path(tempfile.mkdtemp(prefix="deepeyes-demo-"))
    tools = list(tool_names())
    enabled = [t for t in tools if tool_manager is not None and t not in tool_manager.disabled_tools and t not in options.disabled_tools]
    model_max_pixels = getattr(policy, "max_pixels", None)

    def ask(files, videos, question, enabled_tools, force_no_tool, max_turns, temperature, max_new_tokens, video_fps, video_max_frames,
            request: gr.Request):
        hide = gr.update(visible=False, value=None)
        settings = RunSettings(list(enabled_tools or []), bool(force_no_tool), int(max_turns), float(temperature), int(max_new_tokens),
                               float(video_fps), int(video_max_frames))
        try:
            prepared = prepare_input([str(f) for f in files or []], question, model_max_pixels=model_max_pixels,
                                     video_paths=[str(v) for v in videos or []], video_sampling=settings.video_sampling())
        except ValueError as exc:  # an InputError, or video settings out of range (a hand-made request)
            yield message_html(str(exc)), gr.update(), hide
            return
        notes = "".join(message_html(note, "note") for note in prepared.notes)
        run = ChatRun(policy, tool_manager, prepared, settings)
        session = _session_id(request)
        sessions.start(session, run)
        working = notes + message_html("Working… each turn appears as soon as it is done.", "info")
        yield working, render_trajectory(run.trajectory or _pending(prepared.question), running=True), hide
        try:
            for update in run.updates():
                if not update.done:
                    yield working, update.html, hide
                    continue
                status = notes + (message_html(update.error) if update.error else "")
                file = _save(downloads, update.trajectory) if update.trajectory is not None else None
                yield status, update.html, gr.update(visible=file is not None, value=file)
        finally:
            run.stop()  # no-op when finished; ends the run when the client went away mid-stream
            sessions.finish(session, run)

    def stop(request: gr.Request):
        stopped = sessions.stop(_session_id(request))
        return message_html("Stopping after the current step…" if stopped else "Nothing is running.", "info")

    def unload(request: gr.Request):
        sessions.stop(_session_id(request))

    viewer_may_read = image_reader(options.viewer_image_dirs)

    def open_file(file):
        if not file:
            return [], message_html("Choose a trajectory JSONL file.", "info"), *_filter_updates([], [])
        try:
            loaded = load_trajectories(file)
        except (OSError, UnicodeError) as exc:
            return [], message_html(f"Cannot read this file: {exc}"), *_filter_updates([], [])
        messages = ""
        if loaded.errors:
            shown = "; ".join(loaded.errors[:MAX_ERRORS_SHOWN])
            more = f" (and {len(loaded.errors) - MAX_ERRORS_SHOWN} more)" if len(loaded.errors) > MAX_ERRORS_SHOWN else ""
            messages = message_html(f"{len(loaded.errors)} line(s) skipped: {shown}{more}", "error" if not loaded.trajectories else "note")
        if loaded.trajectories:
            messages += message_html(f"Loaded {len(loaded.trajectories)} trajectories from {Path(file).name}.", "info")
        elif not loaded.errors:
            messages = message_html("This file holds no trajectories.")
        trajectories = loaded.trajectories
        return trajectories, messages, *_filter_updates(trajectories, list(range(len(trajectories))), reset=True)

    def refilter(trajectories, datasets, categories, correctness, used):
        selection = TrajectoryFilter(list(datasets or []), list(categories or []), correctness or "all", list(used or []))
        return _filter_updates(trajectories, selection.apply(trajectories))[3:]

    def show(trajectories, choice):
        if choice is None or not trajectories or not 0 <= int(choice) < len(trajectories):
            return ""
        return render_trajectory(trajectories[int(choice)], may_read=viewer_may_read)

    with gr.Blocks(title="DeepEyes demo", css=CSS, analytics_enabled=False) as demo:
        gr.Markdown(
            f"## DeepEyes: thinking with images\nModel: **{options.model_label}**. Upload images or videos, ask, and watch the reasoning, "
            "every tool call and its result. The viewer tab opens trajectory files written by evaluation, RL or this page."
        )
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"), gr.Row():
                with gr.Column(scale=2):
                    files = gr.File(label="Images", file_count="multiple", type="filepath", elem_id="chat-images")
                    videos = gr.File(label="Videos (sampled into frames: video_1 …)", file_count="multiple", type="filepath", elem_id="chat-videos")
                    question = gr.Textbox(label="Question", lines=2, placeholder="Ask about the images or videos…", elem_id="chat-question")
                    with gr.Row():
                        ask_button = gr.Button("Ask", variant="primary", elem_id="chat-ask")
                        stop_button = gr.Button("Stop", variant="stop", elem_id="chat-stop")
                    with gr.Accordion("Settings", open=True):
                        tool_box = gr.CheckboxGroup(tools, value=enabled, label="Tools the model may use", interactive=tool_manager is not None, elem_id="chat-tools")
                        no_tool = gr.Checkbox(value=tool_manager is None or options.force_no_tool, label="Force no tool (one turn, direct answer)", elem_id="chat-no-tool")
                        max_turns = gr.Slider(1, 32, value=options.max_turns, step=1, label="Max turns", elem_id="chat-max-turns")
                        temperature = gr.Slider(0.0, 2.0, value=options.temperature, step=0.05, label="Temperature (0 = greedy)")
                        max_new_tokens = gr.Slider(16, 8192, value=options.max_new_tokens, step=16, label="Max new tokens per turn", elem_id="chat-max-new-tokens")
                        video_fps = gr.Slider(0.25, 8.0, value=options.video_fps, step=0.25, label="Video frames per second", elem_id="chat-video-fps")
                        video_max_frames = gr.Slider(1, options.video_frame_limit, value=options.video_max_frames, step=1,
                                                     label="Max frames per video", elem_id="chat-video-max-frames")
                    if options.examples:
                        gr.Examples(options.examples, inputs=[files, question], label="Examples from the sample data")
                with gr.Column(scale=3):
                    status = gr.HTML(elem_id="chat-status")
                    output = gr.HTML(elem_id="chat-output")
                    download = gr.DownloadButton("Download trajectory (JSONL)", visible=False, elem_id="chat-download")
            with gr.Tab("Trajectory viewer", id="viewer"):
                loaded = gr.State([])
                viewer_file = gr.File(label="Trajectory JSONL (evaluation, RL or demo)", type="filepath", elem_id="viewer-file")
                viewer_status = gr.HTML(elem_id="viewer-status")
                with gr.Row():
                    datasets = gr.Dropdown([], multiselect=True, label="Dataset", elem_id="viewer-dataset")
                    categories = gr.Dropdown([], multiselect=True, label="Category", elem_id="viewer-category")
                    correctness = gr.Radio(list(CORRECTNESS), value="all", label="Result", elem_id="viewer-correctness")
                    used = gr.CheckboxGroup([], label="Tools used (any of)", elem_id="viewer-tools")
                table = gr.Dataframe(headers=SUMMARY_HEADERS, interactive=False, wrap=True, elem_id="viewer-table")
                pick = gr.Dropdown([], label="Open a trajectory", elem_id="viewer-pick")
                viewer_output = gr.HTML(elem_id="viewer-output")

        inputs = [files, videos, question, tool_box, no_tool, max_turns, temperature, max_new_tokens, video_fps, video_max_frames]
        ask_button.click(ask, inputs, [status, output, download], concurrency_limit=options.concurrency, concurrency_id="ask")
        question.submit(ask, inputs, [status, output, download], concurrency_limit=options.concurrency, concurrency_id="ask")
        stop_button.click(stop, None, status, queue=False)
        demo.unload(unload)
        filter_outputs = [datasets, categories, used, table, pick]
        viewer_file.change(open_file, viewer_file, [loaded, viewer_status, *filter_outputs])
        for control in (datasets, categories, correctness, used):
            control.change(refilter, [loaded, datasets, categories, correctness, used], [table, pick])
        pick.change(show, [loaded, pick], viewer_output)
    demo.queue(default_concurrency_limit=options.concurrency)
    return demo


def _pending(question: str) -> Trajectory:
    return Trajectory(id="pending", question=question, images=[])


def _save(folder: Path, trajectory: Trajectory) -> str:
    path = folder / f"{trajectory.id}.jsonl"
    write_jsonl(path, [trajectory], append=False)
    return str(path)


def _filter_updates(trajectories: list[Trajectory], indices: list[int], reset: bool = False) -> list[Any]:
    """Updates for [datasets, categories, tools, table, pick]; ``reset`` also refills the filter choices."""
    rows = [summary_row(i, trajectories[i]) for i in indices]
    choices = [(choice_label(i, trajectories[i]), i) for i in indices]
    pick = gr.update(choices=choices, value=None)
    if not reset:
        return [gr.update(), gr.update(), gr.update(), rows, pick]
    found = facets(trajectories)
    return [
        gr.update(choices=found["datasets"], value=[]),
        gr.update(choices=found["categories"], value=[]),
        gr.update(choices=found["tools"], value=[]),
        rows,
        pick,
    ]


# -- command line -------------------------------------------------------------------------
DESCRIPTION = "DeepEyes Gradio demo: a chat page that streams the agent's reasoning and tool calls, and a trajectory viewer."


@dataclass(frozen=True)
class DemoArguments:
    """``python demo/gradio_demo.py``: the web server; the model and tools are :class:`ModelArguments` and :class:`ToolArguments`."""

    host: str = field(default="127.0.0.1", metadata={"help": "address to listen on (0.0.0.0 for every interface)"})
    port: int = field(default=7860, metadata={"help": "port to listen on"})
    concurrency: int = field(default=2, metadata={"help": "questions answered at once; other users queue"})
    share: bool = field(default=False, metadata={"help": "also open a public gradio.live share link"})
    viewer_image_dirs: str = field(
        default=str(SAMPLE_DIR),
        metadata={"help": "comma-separated folders the trajectory viewer may read images from when an uploaded file names "
                          "image paths (images embedded in the file always show)"},
    )


def parse_args(argv: list[str] | None = None) -> tuple[DemoArguments, ModelArguments, ToolArguments, LoggingArguments]:
    """The demo's command line: the web server, then the model and tool flags every front end shares."""
    return parse_cli(  # type: ignore[return-value]
        [DemoArguments, ModelArguments, ToolArguments, LoggingArguments], argv, prog="python demo/gradio_demo.py",
        description=DESCRIPTION, aliases=ALIASES,
    )


def main(argv: list[str] | None = None) -> int:
    args, model, tools, logging_args = parse_args(argv)
    logging_args.configure()
    policy = build_policy(model)
    options = DemoOptions(
        max_turns=tools.max_turns, temperature=model.temperature, max_new_tokens=model.max_new_tokens,
        disabled_tools=tuple(tools.disable_tools), force_no_tool=tools.force_no_tool,
        concurrency=args.concurrency, model_label=model.label, examples=sample_examples(),
        viewer_image_dirs=tuple(folder.strip() for folder in args.viewer_image_dirs.split(",") if folder.strip()),
    )
    with ExitStack() as stack:
        tool_manager = build_tool_manager(tools)
        if tool_manager is not None:
            stack.enter_context(tool_manager)
        demo = build_app(policy, tool_manager, options)
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, allowed_paths=[str(SAMPLE_DIR)])
    return 0
