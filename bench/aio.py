"""asyncio helpers shared by the load generator, targets and workloads.

Owns: `gather_bounded`, running coroutines together under a time bound so
that a failure, a timeout or Ctrl-C cancels the rest cleanly (a TaskGroup:
no orphaned futures, no "exception was never retrieved" noise).
"""

import asyncio


async def gather_bounded(coros, timeout: float) -> list:
    """Results of ``coros`` in order; TimeoutError after ``timeout`` s; the first failure is re-raised as is."""
    try:
        async with asyncio.timeout(timeout):
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(c) for c in coros]
    except BaseExceptionGroup as group_error:
        raise group_error.exceptions[0] from None
    return [t.result() for t in tasks]
