"""The drills' following tail (`tests.following_tail`) counts what it must not see.

Owns: the check that `FollowingTail` reports a repeated event (a seq at or below the
last one) and a gap as errors, so the rolling-restart and load-balancer drills, which
assert it saw no error, fail on either. Must not: start a node (the drills do).
"""

from tests.following_tail import FollowingTail


class ReceivedEvents:
    """What `FollowingTail._take` reads of a tail: the events received since the last take."""

    def __init__(self, seqs):
        self.events = [{"seq": seq} for seq in seqs]


def test_a_repeat_and_a_gap_are_errors():
    follower = FollowingTail([], "ses_x")
    follower._take(ReceivedEvents([1, 2, 2, 3]))
    follower._take(ReceivedEvents([1, 5]))   # a resume that replayed seq 1, then lost 4
    assert follower.seqs == [1, 2, 3, 5]
    assert follower.errors == ["ws ses_x: repeat of seq 2 after 2", "ws ses_x: repeat of seq 1 after 3",
                               "ws ses_x: gap, 3 then 5"]


def test_an_unbroken_run_has_no_error():
    follower = FollowingTail([], "ses_x", kind="sse")
    follower._take(ReceivedEvents([1, 2]))
    follower._take(ReceivedEvents([3]))
    assert follower.seqs == [1, 2, 3] and follower.errors == [] and follower.last == 3
