"""The `starcite` command: `serve` starts a node, `ops` talks to a running one.

Owns: argument parsing, turning configuration errors into one clear line and
exit status 2, `backup DEST` and `restore SRC` (the running node makes the
backup when there is one, asked over its ops socket; otherwise the command
copies under the node's data-directory lock: `starcite.node.backup`), and
the ops console client (`status`, `ready-nodes`,
`drain [node]`, `undrain [node]`, `wait-ready <ms>`, `wait-synced <ms>`,
`wait-drained <ms>`, `archive-pause [ms]`, `archive-resume`),
which finds the node it runs beside from the same config file and
environment as `starcite serve` and sends its commands over that node's ops
socket, where they become messages to the node's actors. Must not: contain node logic.
"""

import argparse
import http.client
import ipaddress
import json
import os
import sys
import time
import urllib.parse

from starcite.cluster.ops_client import OpsClient
from starcite.config.settings import ConfigError, load_config
from starcite.config.data_layout import check_data_layout
from starcite.config.data_lock import DataDirInUse, lock_data_dirs


def _fail(message: str, code: int = 2) -> int:
    """One line on stderr, ``starcite: <message>``, and the exit status."""
    print(f"starcite: {message}", file=sys.stderr)
    return code


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def api_reach_warning(config):
    """A cluster member whose API listens on loopback while its peer address is not: clients on
    other hosts cannot reach it. Only a warning: a proxy on the same host may be the API's front."""
    peer_host = config.peers.get(config.node_name, ("127.0.0.1", 0))[0]
    if config.single_node or not _is_loopback(config.host) or _is_loopback(peer_host):
        return None
    return (f"starcite: warning: the API listens on {config.host}:{config.port} only, while this node's peer "
            f"address is {peer_host}: clients on other hosts cannot reach it; set STARCITE_HOST (e.g. "
            "0.0.0.0) unless a proxy on this host fronts the API")


def _serve(args):
    try:
        config = load_config(args.config)
        locks = lock_data_dirs(config)  # held (and inherited by the worker) while the node runs
        if api_reach_warning(config):
            print(api_reach_warning(config), file=sys.stderr)
        check_data_layout(config)
        if config.archive_adapter != "local":
            # The adapter check talks to S3/Postgres from this (master) process: patch it
            # first, as the worker is, so the adapter builds its clients the same way.
            from gevent import monkey
            monkey.patch_all()
            from starcite.adapters import build_adapter
            adapter = build_adapter(config)
            adapter.check()
            adapter.close()
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}")
    except DataDirInUse as exc:
        return _fail(str(exc))
    except Exception as exc:  # archive check failed: one clear line, not a traceback
        return _fail(f"archive check failed: {exc}")
    from starcite.api.server.worker import StarciteApplication
    StarciteApplication(config).run()
    del locks  # released by the kernel as the last process holding them exits
    return 0


BACKUP_TIMEOUT_S = 3600.0


def _data_command(args, action):
    """Run ``action(config, path)`` (it prints its result) with `backup`/`restore`'s errors as one line."""
    from starcite.node.backup import BackupError
    try:
        return action(load_config(args.config), os.path.abspath(args.path))
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}")
    except DataDirInUse as exc:
        return _fail(f"{exc}: stop it before restoring")
    except BackupError as exc:
        return _fail(exc.message, 1)
    except (OSError, http.client.HTTPException) as exc:
        return _fail(f"cannot reach the running node's ops socket: {exc}")


def _locked(config, work):
    """``work()``'s result printed as JSON, under ``config``'s data-directory lock (`DataDirInUse` if taken)."""
    locks = lock_data_dirs(config)
    try:
        print(json.dumps(work(), indent=2))
    finally:
        for fh in locks:
            fh.close()
    return 0


def _backup(config, dest):
    """``starcite backup DEST``: by the running node if there is one, else under its lock."""
    from starcite.node import backup
    try:
        return _locked(config, lambda: backup.backup_stopped(config, dest))
    except DataDirInUse:  # a node runs: it makes the backup, consistent while it serves
        pass
    status, body = OpsClient(config.ops_socket_path, BACKUP_TIMEOUT_S).request(
        "POST", f"/ops/backup?dest={urllib.parse.quote(dest)}")
    if status != 200:
        return _fail(body.get("message") if isinstance(body, dict) else body, 1)
    print(json.dumps(body, indent=2))
    return 0


def _restore(config, src):
    """``starcite restore SRC``: only with no node running on this data directory."""
    from starcite.node import backup
    return _locked(config, lambda: backup.restore(config, src))


def _wait(client, path, predicate, timeout_ms):
    deadline = time.monotonic() + timeout_ms / 1000.0
    while True:
        try:
            status, body = client.get(path)
            if predicate(status, body):
                return 0, body
        except (OSError, ValueError, http.client.HTTPException):
            body = None
        if time.monotonic() >= deadline:
            return 1, body
        time.sleep(0.2)


def _ops_client(args):
    if args.socket:
        return OpsClient(args.socket)
    return OpsClient(load_config(args.config).ops_socket_path)


def _ops(args):
    try:
        client = _ops_client(args)
    except ConfigError as exc:
        return _fail(f"configuration error: {exc}")
    command = args.command
    try:
        if command in ("status", "ready-nodes"):
            status, body = client.get(f"/ops/{command}")
            code = 0 if status == 200 else 1
        elif command in ("drain", "undrain", "archive-pause", "archive-resume"):
            name, value = {"archive-pause": ("ms", args.arg or "600000"), "archive-resume": (None, None)}.get(
                command, ("node", args.arg))
            target = f"?{name}={urllib.parse.quote(value)}" if value else ""
            status, body = client.request("POST", f"/ops/{command}{target}")
            code = 0 if status == 200 else 1
        elif command == "wait-ready":
            code, body = _wait(client, "/health/ready", lambda s, b: s == 200, int(args.arg or 60000))
        elif command == "wait-synced":  # up and synced: ready, or held back only by its (sticky) drain
            code, body = _wait(client, "/health/ready", lambda s, b: s == 200 or (
                isinstance(b, dict) and b.get("reason") == "draining"), int(args.arg or 60000))
        else:  # wait-drained [ms] [--node N]: every visible node agrees the target is drained
            target = f"?node={urllib.parse.quote(args.node)}" if args.node else ""
            code, body = _wait(client, f"/ops/agreement{target}", lambda s, b: s == 200 and all(
                view == "draining" for view in b["views"].values()), int(args.arg or 30000))
    except (OSError, http.client.HTTPException) as exc:
        print(f"starcite: cannot reach the node's ops socket {client.path}: {exc}", file=sys.stderr)
        return 2
    if command == "status" and not args.json and isinstance(body, dict) and "groups" in body:
        print(format_status(body))
    else:
        print(json.dumps(body, indent=2))
    return code


def format_status(body: dict) -> str:
    """`starcite ops status` for a person: the node, its peer links, then one line per local group."""
    lines = [f"node {body['node']} ({body['mode']}): {'ready' if body['ready'] else 'not ready: ' + str(body['reason'])}",
             "write nodes: " + ", ".join(f"{n} {s}" for n, s in body.get("observer", {}).items()),
             f"tails {body.get('tails', 0)}, hot bytes {body.get('hot_bytes', 0)}, "
             f"forwarded commands {body.get('forwarded_commands', 0)}"]
    for worker, groups in (body.get("workers") or {}).items():
        lines.append(f"worker {worker}: " + (f"groups {' '.join(map(str, groups))}" if isinstance(groups, list)
                                             else f"not answering ({groups.get('error')})"))
    for peer, link in (body.get("peers") or {}).items():
        detail = f"up {link['up_seconds']}s" if link["state"] == "up" else f"down ({link.get('error') or 'never up'})"
        lines.append(f"peer {peer}: {detail}")
    if body["groups"]:
        lines.append(f"{'group':>5} {'leader':<12} {'term':>5} {'commit':>8} {'applied':>8}  replicas")
    for group in body["groups"]:
        replicas = " ".join(f"{name}{'' if state['connected'] else '(disconnected)'}"
                            + (f"@{state['match_index']}" if "match_index" in state else "")
                            for name, state in (group.get("replicas") or {}).items())
        leader = (group["leader"] or "-") + ("*" if group["is_leader"] else "")
        lines.append(f"{group['group']:>5} {leader:<12} {group['term']:>5} {group['commit_index']:>8} "
                     f"{group['last_applied']:>8}  {replicas}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="starcite", description="Durable, ordered session streams")
    sub = parser.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="start a node")
    serve.add_argument("--config", help="TOML config file (see conf/starcite.toml)")
    ops = sub.add_parser("ops", help="operate a running node")
    ops.add_argument("command", choices=["status", "ready-nodes", "drain", "undrain", "wait-ready", "wait-synced",
                                         "wait-drained", "archive-pause", "archive-resume"])
    ops.add_argument("arg", nargs="?", help="node name (drain/undrain), timeout in ms (wait-*), "
                                            "pause in ms (archive-pause, default 600000)")
    ops.add_argument("--config", help="the node's TOML config file (as given to `starcite serve`)")
    ops.add_argument("--socket", help="the node's ops socket (default: from the config: <data_dir>/ops.sock)")
    ops.add_argument("--json", action="store_true", help="status as JSON")
    ops.add_argument("--node", help="wait-drained: the node to wait for (default: this node)")
    backup = sub.add_parser("backup", help="copy this node's data (Raft dir, local archive) to DEST")
    backup.add_argument("path", metavar="DEST", help="a new or empty directory")
    backup.add_argument("--config", help="the node's TOML config file (as given to `starcite serve`)")
    restore = sub.add_parser("restore", help="copy a backup into this node's empty data directory")
    restore.add_argument("path", metavar="SRC", help="a directory written by `starcite backup`")
    restore.add_argument("--config", help="the node's TOML config file (as given to `starcite serve`)")
    args = parser.parse_args(argv)
    if args.cmd in ("backup", "restore"):
        return _data_command(args, _backup if args.cmd == "backup" else _restore)
    return _serve(args) if args.cmd == "serve" else _ops(args)


if __name__ == "__main__":
    sys.exit(main())
