"""The `run` command: which workloads run, in which order, and what happens
around them.

Owns: the workload list, the scratch directory and the supervisor (so every
started process is stopped, also on Ctrl-C or an exception), turning a
workload's exception into a "not available"/"failed" row, machine facts, and
the final table and JSON file. Must not: contain workload logic.
"""

import dataclasses
import datetime
import functools
import os
import platform
import shutil
import signal
import sys
import tempfile
import time

from bench import results
from bench.context import FULL, QUICK, Context
from bench.procs import NotYetError, StartError, Supervisor
from bench.targets import REPO_ROOT
from bench.targets import etcd as etcd_target
from bench.targets import postgres as pg_target
from bench.targets import redis as redis_target
from bench.workloads import agents, append, failover, fanout, idle, memory, reconnect, replay

RESULTS_DIR = os.path.join(REPO_ROOT, "bench", "results")


@dataclasses.dataclass(frozen=True)
class Spec:
    workload: str
    system: str
    run: object  # Context -> list[Row]
    shares: tuple = ()  # names of `Context.shared_system`s it uses (kept running into the next spec)

    @property
    def key(self) -> str:
        return f"{self.workload}:{self.system}"


SPECS = [
    Spec("append", results.CEILING_SYSTEM, append.generator_ceiling),
    Spec("append", "hello", append.hello),
    Spec("append", "redis-always", functools.partial(append.redis, fsync="always")),
    Spec("append", "redis-everysec", functools.partial(append.redis, fsync="everysec")),
    Spec("append", "postgres", append.postgres),
    Spec("append", "starcite", append.starcite_single),
    Spec("append", "starcite-2w", functools.partial(append.starcite_single, workers=2)),
    Spec("append", results.ETCD_SYSTEM, append.etcd),
    Spec("append", results.CLUSTER_SYSTEM, append.starcite_cluster, shares=(results.CLUSTER_SYSTEM,)),
    Spec("failover", results.CLUSTER_SYSTEM, failover.starcite_cluster, shares=(results.CLUSTER_SYSTEM,)),
    Spec("agents", results.CLUSTER_SYSTEM, agents.starcite_cluster, shares=(results.CLUSTER_SYSTEM,)),
    Spec("agents", "redis-always", agents.redis),
    Spec("agents", "starcite", agents.starcite),
    Spec("replay", "redis-xread", replay.redis),
    Spec("replay", "postgres-scan", replay.postgres),
    Spec("replay", "starcite", replay.starcite),
    Spec("replay", "starcite-cold-s3", replay.starcite_cold_s3),
    Spec("replay", "starcite-cold-postgres", replay.starcite_cold_postgres),
    Spec("fanout", "starcite", fanout.starcite),
    Spec("idle", "starcite", idle.starcite),
    Spec("idle", "starcite-sse", idle.starcite_sse),
    Spec("reconnect", "starcite", reconnect.starcite),
    Spec("memory", "starcite", memory.starcite),
]


def _keep_logs(children: list, log_dir: str) -> str:
    """Copy the logs of ``children`` into ``log_dir``; returns it."""
    os.makedirs(log_dir, exist_ok=True)
    for child in children:
        shutil.copy(child.log_path, log_dir)
    return log_dir


def _run_spec(ctx, spec: Spec, log_dir: str) -> list:
    started, first_child = time.monotonic(), ctx.first_child(spec.shares)
    ctx.log(f"-- {spec.key}")
    try:
        rows = spec.run(ctx)
    except NotYetError as exc:
        rows = [results.Row(spec.workload, spec.system, None, results.NOT_YET, str(exc)[:500])]
    except StartError as exc:
        rows = [results.Row(spec.workload, spec.system, None, results.NOT_AVAILABLE, str(exc)[:500])]
    except Exception as exc:  # a broken workload must not lose the others' results
        rows = [results.Row(spec.workload, spec.system, None, results.FAILED, f"{type(exc).__name__}: {exc}"[:500])]
    crashes = ctx.sup.take_crashes()
    failed = [r for r in rows if r.status == results.FAILED]
    if failed and ctx.sup.spawned[first_child:]:
        kept = _keep_logs(ctx.sup.spawned[first_child:], os.path.join(log_dir, spec.key.replace(":", "-")))
        crashes.append(f"logs: {os.path.relpath(kept, REPO_ROOT)}")
    for row in failed:
        row.note = "; ".join([row.note, *crashes])[:1500]
    for status, note in dict.fromkeys((r.status, r.note) for r in rows if r.status != results.OK):
        ctx.log(f"{spec.key}: {status}: {note}")
    ctx.log(f"-- {spec.key} done in {time.monotonic() - started:.1f}s")
    return rows


def _machine() -> dict:
    facts = {"cpus": os.cpu_count(), "loadavg_at_start": os.getloadavg(), "python": sys.version.split()[0],
             "platform": platform.platform()}
    for name, probe in (("redis_server", redis_target.version), ("postgres", pg_target.settings),
                        ("etcd", etcd_target.version)):
        try:
            facts[name] = probe()
        except Exception as exc:  # a missing peer is reported by its rows; the facts just say so
            facts[name] = f"unavailable: {exc}"
    return facts


def _selects(pattern: str, key: str) -> bool:
    """``--only``: a key containing ``pattern``, or exactly ``pattern`` without its trailing ``$``."""
    return key == pattern[:-1] if pattern.endswith("$") else pattern in key


def run(quick: bool, only: list, procs: int, out_dir: str = RESULTS_DIR, ops: int = None) -> int:
    profile = QUICK if quick else FULL
    if ops:
        profile = dataclasses.replace(profile, ops=ops)
    specs = [s for s in SPECS if not only or any(_selects(o, s.key) for o in only)]
    stamp = datetime.datetime.now(datetime.timezone.utc)
    work_dir = tempfile.mkdtemp(prefix="starcite-bench-")
    base_name = os.path.join(out_dir, stamp.strftime("%Y%m%dT%H%M%SZ"))
    log_dir = base_name + "-logs"  # only created when a workload fails: its children's logs
    rows, interrupted, started = [], False, time.monotonic()
    machine = _machine()
    try:
        with Supervisor(work_dir) as sup:
            ctx = Context(profile, sup, work_dir, procs)
            ctx.log(f"profile {profile.name}, {len(specs)} workloads, generator processes {procs}")
            try:
                for number, spec in enumerate(specs):
                    rows += _run_spec(ctx, spec, log_dir)
                    ctx.release(keep=specs[number + 1].shares if number + 1 < len(specs) else ())
            finally:
                ctx.release()
    except (KeyboardInterrupt, SystemExit):  # Ctrl-C, or SIGTERM (the supervisor turns it into SystemExit)
        interrupted = True
        print("interrupted: everything started was stopped; partial results follow", file=sys.stderr)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # the rest is short: let it finish and report
            signal.signal(sig, signal.SIG_IGN)
        shutil.rmtree(work_dir, ignore_errors=True)
    duration = round(time.monotonic() - started, 1)
    results.flag_generator_bound(rows)
    results.note_cluster_targets(rows)
    ratio_rows = results.ratios(rows)
    path = base_name + ".json"
    run_facts = {"started_at": stamp.isoformat(timespec="seconds"), "duration_s": duration, "interrupted": interrupted,
                 "generator_processes": procs, "profile": dataclasses.asdict(profile), "argv": sys.argv}
    results.write_json(path, run_facts, machine, rows, ratio_rows)
    print(results.render(rows, ratio_rows))
    print(f"\n{len(rows)} rows in {duration}s; JSON: {os.path.relpath(path, REPO_ROOT)}")
    if interrupted:
        return 130
    return 1 if any(r.status == results.FAILED for r in rows) else 0
