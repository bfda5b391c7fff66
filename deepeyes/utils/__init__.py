"""Small helpers shared across the package (process launching, logging set-up)."""
