"""In-package evaluation helpers that stages share (e.g. the SFT format check)."""
