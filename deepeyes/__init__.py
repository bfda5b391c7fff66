"""DeepEyes: agentic multimodal models that think with images, code and search.

The package holds everything the stages share: the wire format and action parser, the
tool manager (sandbox + search), the agent loop, rewards, data formats and the tiny
offline model used for CPU runs.
"""

__version__ = "0.1.0"
