"""``forgeml profile``: a data-quality profile of a table before training (analyze.py computes it as a JSON-able
dict; report.py renders it for the terminal and as HTML)."""
