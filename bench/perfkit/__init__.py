"""The bench's building blocks: pure helpers (table, checks, script rendering) and runners.

`bench/perf.py` is the one command; the row modules (`rows_*.py`) each measure one part of the
table and return `Row`s; a row that fails returns a `Row` whose figure says so.
"""
