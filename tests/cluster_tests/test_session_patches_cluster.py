"""PATCH, archive and unarchive on a real 3-node cluster: one node writes, every node reads the same record.

Owns: a patch through one node seen (title, metadata, version) by the
others, an expected_version conflict answered through a third node, archive
and unarchive routed from a node that may not lead the group, and the
archived filter of every node's listing. Must not: wait without a bound.
"""

GROUPS = {"STARCITE_NUM_GROUPS": "4"}


def test_patch_through_one_node_read_through_the_others(make_cluster):
    cluster = make_cluster(3, env=GROUPS)
    n1, n2, n3 = cluster["n1"], cluster["n2"], cluster["n3"]
    n1.create("s-patch", title="T", metadata={"case": "patch"})
    response = n2.request("PATCH", "/v1/sessions/s-patch", {"title": "U", "metadata": {"k": "v"},
                                                            "expected_version": 1})
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    for node in cluster:  # reads are fresh: every node sees the acknowledged patch at once
        record = node.request("GET", "/v1/sessions/s-patch").json()
        assert (record["title"], record["metadata"], record["version"]) == ("U", {"case": "patch", "k": "v"}, 2)
    stale = n3.request("PATCH", "/v1/sessions/s-patch", {"title": "W", "expected_version": 1})
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    assert n3.request("POST", "/v1/sessions/s-patch/archive", {}).json()["archived"] is True
    for node in cluster:
        assert node.request("GET", "/v1/sessions/s-patch").json()["archived"] is True
        node.wait_until(lambda node=node: [s["id"] for s in node.request(
            "GET", "/v1/sessions?metadata.case=patch&archived=true").json()["sessions"]] == ["s-patch"],
            what="archived session listed")
        assert node.request("GET", "/v1/sessions?metadata.case=patch").json()["sessions"] == []
    assert n1.request("POST", "/v1/sessions/s-patch/unarchive", {}).json()["archived"] is False
    assert n2.append("s-patch", 1).status_code == 201
    for node in cluster:
        record = node.request("GET", "/v1/sessions/s-patch").json()
        assert (record["archived"], record["version"], record["last_seq"]) == (False, 2, 1)
