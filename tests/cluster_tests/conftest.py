"""Fixtures for cluster tests: a real N-node cluster on loopback, stopped after the test."""

import pytest

from tests.cluster_helpers import Cluster


@pytest.fixture
def make_cluster(tmp_path):
    clusters = []

    def make(size=3, env=None, start=True, **kwargs):
        cluster = Cluster(tmp_path / f"cluster{len(clusters)}", size, env=env, **kwargs)
        clusters.append(cluster)
        return cluster.start() if start else cluster

    yield make
    for cluster in clusters:
        cluster.stop()
    for cluster in clusters:
        for node in cluster:
            assert "Traceback" not in node.output(), node.output()[-4000:]
