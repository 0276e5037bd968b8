"""A 3-node cluster with ``STARCITE_LOG_FORMAT=json``: every line of every node is JSON.

Owns: one end-to-end check that peer links, routing across nodes and a node
going away log JSON only, with the node's name and without the cluster
secret. Must not: repeat the single-node log tests (tests/test_logs.py).
"""

import json


def test_every_line_of_every_node_is_json_without_the_secret(make_cluster):
    cluster = make_cluster(3, env={"STARCITE_LOG_FORMAT": "json"})
    cluster["n1"].create("ses_json_logs")
    for producer_seq in range(1, 4):  # appends on n2 are routed to the group's leader
        assert cluster["n2"].append("ses_json_logs", producer_seq).status_code == 201
    assert cluster["n3"].request("GET", "/v1/sessions/ses_json_logs").status_code == 200
    cluster["n3"].kill()  # the others log the peer link going down
    assert cluster["n1"].append("ses_json_logs", 4).status_code == 201
    cluster.stop()
    secret = cluster["n1"].env["STARCITE_CLUSTER_SECRET"]
    loggers = set()
    for node in cluster:
        output = node.output()
        assert secret not in output
        for line in filter(str.strip, output.splitlines()):
            event = json.loads(line)
            assert event["node"] == node.env["NODE_NAME"], line
            loggers.add(event["logger"])
    assert {"gunicorn.error", "gunicorn.access", "starcite.peer"} <= loggers
