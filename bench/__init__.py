"""Load generators, baselines and the performance bench (`python bench/perf.py`)."""
