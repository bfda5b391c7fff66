"""Behaviour analysis: what the model does with its tools, by task, over training, across runs.

Reads trajectory JSONL (``deepeyes/trajectory.schema.json``) from evaluation folders, RL
folders or plain files, streaming, and writes a report (HTML, PDF, PNG figures, a JSON
summary with every plotted number) plus a trajectory browser
(:func:`deepeyes.analysis.analyze.analyze`). The RL trainer uses
:class:`~deepeyes.analysis.collapse.CollapseAlarm` to warn of tool-use collapse while training.
"""

from deepeyes.analysis.aggregate import AnalysisConfig
from deepeyes.analysis.collapse import CollapseAlarm

__all__ = ["AnalysisConfig", "CollapseAlarm"]
