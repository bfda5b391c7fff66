"""Evaluation: benchmarks in VLMEvalKit TSV conventions through the shared agent loop and reward.

Entry points: :func:`deepeyes.evaluation.runner.evaluate` (library), ``python -m
deepeyes.evaluation`` (CLI, used by ``evaluation/run_eval.sh``), ``python -m
deepeyes.evaluation.compare`` (table over runs, paired tests), ``python -m
deepeyes.evaluation.judge_audit`` (the LLM judge against human verdicts). ``deepeyes.evaluation.vlmeval_model``
holds the model class for VLMEvalKit's own runner (importable only where ``vlmeval`` is
installed: ``.venv-vlmeval``). See docs/evaluation.md.
"""
