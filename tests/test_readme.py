"""The README's generated lists stay true: the metrics table is what a node exports."""

import pathlib

from starcite.metrics import metrics_table

OPERATIONS = pathlib.Path(__file__).resolve().parent.parent / "docs" / "operations.md"


def test_operations_metrics_table_matches_the_code():
    """Regenerate docs/operations.md's metrics table with `starcite.metrics.metrics_table()` when a metric changes."""
    assert metrics_table() in OPERATIONS.read_text()
