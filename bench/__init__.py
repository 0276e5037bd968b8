"""Starcite benchmark harness: `python -m bench run [--quick]`.

The package starts every system it measures on loopback (Starcite, its peers
and a trivial endpoint that shows the load generator's own ceiling), drives
them with one load generator, stops them, prints a table and writes JSON to
`bench/results/`. Layout:

- `wire/`      minimal asyncio clients: HTTP/1.1, RESP (Redis), WebSocket, Postgres
- `targets/`   how each measured system is started, checked and stopped
- `workloads/` what is measured: append, replay, fan-out, idle tails
- `loadgen`    the closed-loop load generator (fixed op counts, 1..N processes)
- `procs`      ports, child processes, RSS; everything started is stopped
- `aio`        bounded, cleanly cancelled gathering of coroutines
- `stats`      percentiles and throughput
- `results`    rows, ratios to the peers, the table and the JSON file
- `runner`     the order of workloads and the `run` command
"""
