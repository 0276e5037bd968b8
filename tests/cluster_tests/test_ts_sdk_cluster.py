"""The newest official TypeScript SDK's flows (`tests.test_ts_sdk`) against a 3-node cluster.

The SDK talks to n2; the flows' own requests (create, append, metrics) go through n2 too. Each
session's group is led by whichever node placement and the elections chose, so most flows cross
nodes: the SDK's appends are forwarded to the leader, its channel's tail is fed by a replica (often
remotely), `range()` and the listing read fresh, and lifecycle events are relayed from the leader.

Owns: the cluster the imported flows run against. Must not: wait without a bound.
"""

import pytest

from tests.cluster_helpers import Cluster
from tests.test_ts_sdk import (driver, sdk, test_append_and_follow_live,  # noqa: F401 (fixtures and flows)
                               test_archive_and_unarchive_with_listing, test_lifecycle_events, test_list_sessions,
                               test_patch_with_expected_version, test_range_backfills_over_a_channel,
                               test_resume_from_the_cursor_after_a_disconnect)


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory):
    """Node n2 of a 3-node cluster (the flows' `shared_server`)."""
    cluster = Cluster(tmp_path_factory.mktemp("sdk-cluster"), 3)
    try:
        cluster.start()
        yield cluster["n2"]
    finally:
        cluster.stop()
