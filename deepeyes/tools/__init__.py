"""The tool runtimes (open / execute / close), one module per tool, paired with their specs in
:mod:`deepeyes.tools.registry`; the specs themselves are :mod:`deepeyes.tool_specs`."""
