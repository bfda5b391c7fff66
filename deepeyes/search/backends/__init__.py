"""Text-search backends: ``local`` (BM25), ``http`` (JSON web-search APIs), ``private`` (user function)."""
