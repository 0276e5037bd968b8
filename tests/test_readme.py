"""The README's generated lists stay true: the metrics table is what a node exports."""

import pathlib

from starcite.telemetry.metrics import metrics_table

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_readme_metrics_table_matches_the_code():
    """Regenerate the README's metrics table with `starcite.telemetry.metrics.metrics_table()` when a metric changes."""
    assert metrics_table() in README.read_text()
