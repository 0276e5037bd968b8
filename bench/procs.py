"""Everything the harness starts, and how it is stopped.

Owns: picking free loopback ports, spawning child processes in their own
process groups with their output in log files, bounded readiness waits,
stopping (SIGTERM, bounded wait, SIGKILL of the whole group), reading the
RSS of a process tree, and the open-file limit of client processes. `Supervisor` is a context manager: leaving it (normal
exit, exception, Ctrl-C, SIGTERM to the harness) stops every child still
running, newest first. Must not: know what the children are.
"""

import multiprocessing
import os
import random
import resource
import signal
import socket
import subprocess
import time

PORT_RANGE = (20000, 32000)  # below the ephemeral range, so client sockets never collide


class StartError(Exception):
    """A system could not be started; the message says why (with its log tail)."""


class NotYetError(StartError):
    """A system started but lacks what the workload measures (not built yet); the message says what."""


def free_port() -> int:
    """A loopback TCP port that is free right now (bounded number of tries)."""
    for _ in range(200):
        port = random.randint(*PORT_RANGE)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise StartError("no free loopback port found")


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05, alive=None):
    """Poll ``predicate()`` until truthy; StartError after ``timeout`` or when ``alive()`` turns false."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise StartError(f"{what}: process exited")
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the predicate probes a starting server: any failure means "not yet"
            last_error = exc
        time.sleep(interval)
    raise StartError(f"{what}: not ready after {timeout:.0f}s ({last_error})")


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def raise_fd_limit():
    """Raise this process's open-file limit to its hard limit (thousands of client sockets)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _tree(pid: int) -> list:
    """``pid`` and all its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(children.get(current, ()))
    return out


def cpu_seconds(pids) -> float:
    """User + system CPU time used so far by the processes ``pids`` (gone ones count 0)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_cpu_seconds() -> dict:
    """The whole machine's CPU time so far, from /proc/stat: ``busy`` (user, nice, system, irq,
    softirq) and ``steal`` (taken by the hypervisor for other guests), in CPU-seconds."""
    with open("/proc/stat") as f:
        fields = [int(v) for v in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    busy = fields[0] + fields[1] + fields[2] + fields[5] + fields[6]
    return {"busy": busy / hz, "steal": (fields[7] if len(fields) > 7 else 0) / hz}


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of ``pid`` and all its descendants."""
    return cpu_seconds(_tree(pid))


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and all its descendants."""
    total = 0
    for current in _tree(pid):
        try:
            with open(f"/proc/{current}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


class Child:
    """A spawned process (leader of its own process group) and its log file."""

    def __init__(self, name: str, popen: subprocess.Popen, log_path: str):
        self.name, self.popen, self.log_path = name, popen, log_path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:]).strip()
        except OSError:
            return ""

    def stop(self, timeout: float = 15.0):
        """SIGTERM the group, wait up to ``timeout``, then SIGKILL it."""
        if self.alive():
            self.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()  # also reaps stragglers left in the group

    def terminate(self):
        self._signal(signal.SIGTERM)

    def kill(self):
        """SIGKILL the whole group at once and reap the leader (bounded)."""
        self._signal(signal.SIGKILL)
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def _signal(self, sig):
        try:
            os.killpg(self.popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class Supervisor:
    """Starts children and guarantees they are stopped."""

    def __init__(self, log_dir: str):
        self.log_dir = log_dir
        self._children = []
        self.spawned = []  # every child ever started, stopped or not (their logs stay until the run ends)
        self.crashes = []
        self._previous_sigterm = None

    def __enter__(self):
        self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_exit)
        return self

    def __exit__(self, *exc):
        previous_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            self.stop_all()
        finally:
            signal.signal(signal.SIGINT, previous_sigint)
            signal.signal(signal.SIGTERM, self._previous_sigterm or signal.SIG_DFL)
        return False

    def spawn(self, name: str, argv: list, env: dict = None, cwd: str = None) -> Child:
        log_path = os.path.join(self.log_dir, f"{name}-{len(self._children)}.log")
        full_env = dict(os.environ, **(env or {}))
        try:
            with open(log_path, "wb") as log:
                popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=full_env, cwd=cwd, start_new_session=True)
        except OSError as exc:
            raise StartError(f"{name}: cannot start {argv[0]}: {exc}") from exc
        child = Child(name, popen, log_path)
        self._children.append(child)
        self.spawned.append(child)
        return child

    def start(self, name: str, argv: list, ready, *, env: dict = None, cwd: str = None,
              timeout: float = 30.0) -> Child:
        """Spawn and wait until ``ready()`` is truthy; on failure stop it and raise StartError with its log."""
        return self.await_ready(self.spawn(name, argv, env, cwd), ready, timeout)

    def await_ready(self, child: Child, ready, timeout: float = 30.0, interval: float = 0.05) -> Child:
        """Wait until ``ready()`` is truthy (polled every ``interval`` s); on failure stop ``child``
        and raise StartError with its log."""
        try:
            wait_until(ready, timeout, child.name, interval=interval, alive=child.alive)
        except StartError as exc:
            self.stop(child, timeout=5)
            raise StartError(f"{exc}; log: {child.log_tail(8) or '(empty)'}") from None
        return child

    def stop(self, child: Child, timeout: float = 15.0):
        self.stop_together([child], timeout)

    def stop_together(self, children: list, timeout: float = 15.0):
        """Stop several children at once: SIGTERM to every group first, then each gets what is left of
        ``timeout`` before SIGKILL."""
        for child in children:
            code = child.popen.poll()
            if code is not None:  # it died before we stopped it: keep why, for the report
                self.crashes.append(f"{child.name} had exited with code {code}; log: {child.log_tail(6) or '(empty)'}")
            elif len(children) > 1:
                child.terminate()
        deadline = time.monotonic() + timeout
        for child in children:
            child.stop(max(0.0, deadline - time.monotonic()))
            if child in self._children:
                self._children.remove(child)

    def kill(self, child: Child):
        """SIGKILL ``child``'s whole group at once (a crash, not a stop) and reap it."""
        child.kill()
        if child in self._children:
            self._children.remove(child)

    def take_crashes(self) -> list:
        """Descriptions of children found dead when stopped, since the last call."""
        crashes, self.crashes = self.crashes, []
        return crashes

    def stop_all(self):
        while self._children:
            self._children.pop().stop()


def fork(target, *args):
    """Run ``target(conn, *args)`` in a forked process; returns ``(process, conn)`` (a duplex pipe).

    Used for client-side helpers (load generator shares, tail holders), not for measured systems.
    """
    ctx = multiprocessing.get_context("fork")
    parent_end, child_end = ctx.Pipe()
    process = ctx.Process(target=target, args=(child_end, *args), daemon=True)
    process.start()
    child_end.close()
    return process, parent_end


def reap(process, conn, timeout: float = 5.0):
    """Close the pipe, wait for the forked process up to ``timeout``, kill it if still alive."""
    conn.close()
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join(timeout)


def receive(conn, deadline: float, what: str):
    """The next message from a forked helper before ``deadline`` (time.monotonic), else TimeoutError."""
    if not conn.poll(max(0.0, deadline - time.monotonic())):
        raise TimeoutError(f"{what}: no report in time")
    return conn.recv()


def expect(conn, deadline: float, what: str, kind: str):
    """The helper's next report, which must be ``(kind, ...)``; its ``("error", why)`` or any other raised."""
    message = receive(conn, deadline, what)
    if message[0] != kind:
        raise RuntimeError(f"{what}: {message[1] if message[0] == 'error' else message}")
    return message


def run_reporting(conn, run, coro):
    """In a forked helper: ``run(coro)`` (`asyncio.run`, `uvloop.run`); an exception is reported over
    ``conn`` as ``("error", why)``, and ``conn`` is closed either way."""
    try:
        run(coro)
    except BaseException as exc:
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)
