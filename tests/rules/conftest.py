"""Fixtures of the rules tests: a `GroupState` with one session.

Owns: the `group` fixture (session ``s1`` created at `T0`). Must not: start
actors, Raft or HTTP, or touch the clock; helpers live in `tests.rules.helpers`.
"""

import pytest

from tests.rules.helpers import new_group


@pytest.fixture
def group():
    return new_group()
