"""A lone node's worker processes as members of a cluster on one host.

Owns: how many workers a node runs (`worker_count`: `STARCITE_WORKERS`,
default 1: see `DEFAULT_WORKERS`), each worker's name and sibling
socket (`<data_dir>/workers/w<i>.sock`), and the `Config` a worker runs
with (`member_config`): a cluster of the node's workers, linked over unix
sockets, every member a write node on the same host, so placement gives each
group one replica (RF 1, as a lone node has) on exactly one worker. The
cluster code then does the rest: a request that reaches a worker without its
session's group is routed to the owner like any forwarded command.

Must not: start anything or read the environment; `workers` is a setting.
"""

import os

SOCKETS_DIR = "workers"


# One until a forwarded request costs less: on a 2-core machine, 2 workers did 0.58x the appends of one
# (bench/README.md, "Workers"); the SPEC's default is the cores the process may use.
DEFAULT_WORKERS = 1


def worker_count(config) -> int:
    """Workers this node runs: `STARCITE_WORKERS`, else `DEFAULT_WORKERS`; one on a cluster's node
    (its workers would need a peer port each: not built yet)."""
    if not config.single_node:
        return 1
    return config.workers or DEFAULT_WORKERS


def member_name(node_name: str, index: int) -> str:
    return f"{node_name}.w{index}"


def socket_path(config, index: int) -> str:
    return os.path.join(config.data_dir, SOCKETS_DIR, f"w{index}.sock")


def member_config(config, index: int, count: int, secret: str):
    """The `Config` worker ``index`` of ``count`` runs with (``config`` itself for a one-worker node).
    ``secret`` authenticates the sibling links (chosen by the master at each start)."""
    if count <= 1:
        return config
    names = [member_name(config.node_name, i) for i in range(count)]
    return config.replace(
        node_name=names[index],
        host_node=config.node_name,
        worker_index=index,
        worker_total=count,
        member_peers={name: ("unix", socket_path(config, i)) for i, name in enumerate(names)},
        member_hosts={name: config.node_name for name in names},
        write_node_ids=names,
        cluster_secret=secret,
        # The hot store cap is the node's: each worker holds its share.
        event_store_max_bytes=max(1, config.event_store_max_bytes // count),
    )
