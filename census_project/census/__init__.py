"""What the census entry points share: data loading, the pipeline and its search, charts.

train.py, test.py, monitor.py and benchmark.py read top to bottom; the details they have in
common live here so that each of them stays short.
"""
