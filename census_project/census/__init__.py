"""What the census entry points share: data loading, the pipeline and its search, charts.

train.py, test.py and monitor.py read top to bottom; the details they have in common live here so
that each of them stays short (benchmarks/census_search.py reuses them too).
"""
