"""Reconnect storm: N tails follow one Starcite session while a producer appends at a steady
rate; then the node is restarted (SIGTERM: tails closed with 1000, then started again on the
same data directory) and every client resumes at once from its last seq, as the SDK does.

Figures, from the moment the harness saw the restarted node answer ready (its `/health/ready`
polled every 10 ms on the node's ops socket, served beside the API listener, so the probe
does not queue behind the reconnecting clients): when the last client resumed (the receipt
of its 101) and when the last one was caught up (it received an event whose append was sent after
its resume: it is at the live head), per-client percentiles of the latter, the resume rate
over the storm (clients / first-to-last resume), the first append acked after ready, and
the node's peak RSS (process tree) over the run, and the CPU the node and the clients used
from ready until every client was caught up (with the load average at ready, and the whole
machine's busy and stolen CPU meanwhile: the box is shared). Correctness: once the producer stops,
every client must hold every seq exactly once (``missed``, ``repeated``, ``short`` all 0).

The clients live in forked holder processes (`bench.workloads.resuming_tails`), the producer
in another, so neither delays the other; all stamp with CLOCK_MONOTONIC.
Owns: the producer process, the restart, the RSS sampling and the reconnect row.
"""

import array
import asyncio
import os
import threading
import time

from bench.procs import (cpu_seconds, expect, fork, machine_cpu_seconds, raise_fd_limit, reap, rss_bytes, run_reporting,
                         tree_cpu_seconds)
from bench.results import FAILED, OK, Row
from bench.stats import latency_summary
from bench.targets import starcite as starcite_target
from bench.wire.http import HttpClient
from bench.workloads.resuming_tails import hold_tails

SESSION = "reconnect-0"
_RETRY_S = 0.1       # a failed append is retried (same producer_seq and body) after this
_RSS_EVERY_S = 0.25
_FINAL_S = 30.0      # after the producer stops, how long clients may take to receive the rest


async def _produce(conn, port: int, interval_ms: float):
    """Append on a fixed schedule until told to stop, retrying each append until it is acked."""
    loop = asyncio.get_running_loop()
    stop = loop.run_in_executor(None, conn.recv)
    client, acked, failures, acks = HttpClient(port), 0, 0, array.array("q")
    started = time.monotonic()
    try:
        while not stop.done():
            delay = started + acked * interval_ms / 1000.0 - time.monotonic()
            if delay > 0:
                await asyncio.wait([stop], timeout=delay)
                continue
            payload = b'{"sent_ns":%d}' % time.perf_counter_ns()
            body = starcite_target.append_body(payload, "reconnect", acked + 1)
            while not stop.done():
                try:
                    response = await client.post_json(starcite_target.append_path(SESSION), body)
                    if response.status == 201:
                        acked = response.json()["seq"]
                        acks.append(time.perf_counter_ns())
                        break
                except Exception:  # the node is restarting: retry the same append
                    pass
                failures += 1
                await client.close()
                client = HttpClient(port)
                await asyncio.sleep(_RETRY_S)
    finally:
        await client.close()
    conn.send(("done", acked, failures, acks.tobytes()))


def _producer_process(conn, port, interval_ms):
    run_reporting(conn, asyncio.run, _produce(conn, port, interval_ms))


class _PeakRss:
    """Samples the node's RSS (its current process tree, across the restart) in a thread."""

    def __init__(self, node):
        self.node, self.peak, self._stop = node, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(_RSS_EVERY_S):
            child = self.node.child
            if child is not None:
                self.peak = max(self.peak, rss_bytes(child.pid))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def _storm_figures(ready_ns, resumed, caught_up, count) -> dict:
    """Seconds from ready to the last resume and the last catch-up, per-client percentiles of the
    latter, and the resume rate over the storm (first to last resume)."""
    since_ready = array.array("q", (max(0, t - ready_ns) for t in caught_up if t))
    summary = latency_summary(since_ready)
    window = (max(resumed) - min(resumed)) / 1e9 if resumed else 0
    return {"caught_up": len(since_ready), "not_caught_up": count - len(since_ready),
            "all_resumed_s": round((max(resumed) - ready_ns) / 1e9, 3) if resumed else None,
            "resume_window_s": round(window, 3),
            "resumes_per_s": round(count / window, 1) if window > 0 else None,
            "all_caught_up_s": round(max(since_ready) / 1e9, 3) if since_ready else None,
            **{f"caught_up_{k.replace('_ms', '_s')}": None if v is None else round(v / 1000, 3)
               for k, v in summary.items()}}


def starcite(ctx) -> list:
    p = ctx.profile
    raise_fd_limit()
    count, procs = p.reconnect_tails, max(1, ctx.procs)
    shares = [count // procs + (1 if i < count % procs else 0) for i in range(procs)]
    node = starcite_target.Node(ctx.sup, ctx.work_dir).start()
    holders, producer = [], None
    try:
        ctx.run_async(node.create_sessions([SESSION]))
        holders = [fork(hold_tails, node.port, SESSION, share, p.timeout_s) for share in shares]
        deadline = time.monotonic() + p.timeout_s
        for _process, conn in holders:
            expect(conn, deadline, "tail holder", "ready")
        producer = fork(_producer_process, node.port, p.reconnect_interval_ms)
        ctx.log(f"reconnect starcite: {count} tails live; appends every {p.reconnect_interval_ms:.0f} ms")
        with _PeakRss(node) as rss:
            time.sleep(p.reconnect_steady_s)
            open_before = int(node.metric("starcite_tails_open"))
            restart_ns = time.perf_counter_ns()
            node.restart(same_port=True, ready_via_ops=True)
            ready_ns = time.perf_counter_ns()
            client_pids = [process.pid for process, _conn in holders]
            cpu_at_ready = (tree_cpu_seconds(node.child.pid), cpu_seconds(client_pids), os.getloadavg()[0],
                            machine_cpu_seconds())
            for _process, conn in holders:
                conn.send(("restarted", p.timeout_s))
            resumed, caught_up = [], []
            for _process, conn in holders:
                _, r, c = expect(conn, time.monotonic() + p.timeout_s + 10, "tail holder", "caught_up")
                resumed += r
                caught_up += c
            machine = machine_cpu_seconds()
            storm_cpu = (tree_cpu_seconds(node.child.pid) - cpu_at_ready[0], cpu_seconds(client_pids) - cpu_at_ready[1],
                         {k: machine[k] - cpu_at_ready[3][k] for k in machine})
            open_after = int(node.metric("starcite_tails_open"))
            producer[1].send("stop")
            _, last_seq, append_retries, raw_acks = expect(producer[1], time.monotonic() + 30, "producer", "done")
            acks = array.array("q")
            acks.frombytes(raw_acks)
            totals = {"short": 0, "missed": 0, "repeated": 0, "drops": 0, "failed_attempts": 0, "refusals": {}}
            for _process, conn in holders:
                conn.send(("final", last_seq, _FINAL_S))
            for _process, conn in holders:
                _, figures = expect(conn, time.monotonic() + _FINAL_S + 10, "tail holder", "done")
                for key, value in figures.items():
                    if key == "refusals":
                        for status, n in value.items():
                            totals["refusals"][status] = totals["refusals"].get(status, 0) + n
                    else:
                        totals[key] += value
        after_ready = [t - ready_ns for t in acks if t > ready_ns]
        figures = {**_storm_figures(ready_ns, resumed, caught_up, count), **totals, "events": last_seq,
                   "first_ack_after_ready_s": round(after_ready[0] / 1e9, 3) if after_ready else None,
                   "resumed_p50_s": round(latency_summary([t - ready_ns for t in resumed])["p50_ms"] / 1000, 3),
                   "append_retries": append_retries, "restart_s": round((ready_ns - restart_ns) / 1e9, 3),
                   "open_before": open_before, "open_after": open_after,
                   "peak_rss": rss.peak,
                   # CPU from ready until every client was caught up (the node's includes the live
                   # fan-out meanwhile), and the box's 1-minute load average at ready
                   "node_cpu_s": round(storm_cpu[0], 2), "clients_cpu_s": round(storm_cpu[1], 2),
                   "node_cpu_ms_per_resume": round(storm_cpu[0] * 1000 / count, 3),
                   # the whole machine meanwhile: every process's CPU, and what the hypervisor took
                   "machine_busy_cpu_s": round(storm_cpu[2]["busy"], 2),
                   "machine_steal_cpu_s": round(storm_cpu[2]["steal"], 2),
                   "loadavg_at_ready": round(cpu_at_ready[2], 2)}
        broken = [k for k in ("missed", "repeated", "short", "not_caught_up") if figures[k]]
        note = ", ".join(f"{k} {figures[k]}" for k in broken)
        ctx.log(f"reconnect starcite: all resumed {figures['all_resumed_s']} s, all caught up "
                f"{figures['all_caught_up_s']} s after ready; missed {figures['missed']}, "
                f"repeated {figures['repeated']}; peak RSS {rss.peak / 2**20:.0f} MiB")
        return [Row("reconnect", "starcite", count, FAILED if broken else OK, note, figures)]
    finally:
        for process, conn in holders + ([producer] if producer else []):
            reap(process, conn)
        node.stop()
