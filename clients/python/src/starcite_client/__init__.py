"""Starcite Python SDK: `Starcite` (sync) and `AsyncStarcite` (asyncio), typed errors, and `starcite-cli`.

Owns: the public names of the distribution. Must not: import the server
(`starcite`) or any of its dependencies; the SDK needs only httpx and
websockets.
"""

from starcite_client._core import AppendResult, Event, EventPage
from starcite_client.aio import AsyncProducer, AsyncSession, AsyncStarcite
from starcite_client.client import Producer, Session, Starcite
from starcite_client.errors import *  # noqa: F401,F403 (every typed error)
from starcite_client.errors import StarciteError

__version__ = "0.1.0"
__all__ = ["Starcite", "Session", "Producer", "AsyncStarcite", "AsyncSession", "AsyncProducer", "AppendResult",
           "Event", "EventPage", "StarciteError"]
