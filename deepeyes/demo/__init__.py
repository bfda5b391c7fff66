"""The Gradio demo's reusable parts: trajectory rendering, chat runs, the trajectory viewer.

``demo/gradio_demo.py`` is only the entry point; the page is built by
:func:`deepeyes.demo.app.build_app`. The chat page and the viewer share one renderer
(:mod:`deepeyes.demo.render`), so a trajectory loaded from a JSONL file looks exactly like
one watched live.
"""
