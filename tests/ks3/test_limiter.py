"""The request limit (ks3sync/ks3/limiter.py): the AIMD arithmetic driven with numbers and an injected
clock (no sleeps), the gate with threads, and a simulated throttling service: a limit that adapts
settles near what the service takes and gets few requests refused."""

from __future__ import annotations

import threading

import pytest

from ks3sync.ks3.limiter import DEFAULT_INITIAL, MAX_PAUSE, AimdLimit, Outcome, RequestLimit, SlotTimeout


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_slow_start_doubles_each_round_trip_up_to_the_ceiling() -> None:
    limit = AimdLimit(ceiling=64, limit=8)
    rounds = []
    for _ in range(5):
        allowed = limit.allowed
        for _ in range(allowed):  # a round trip: every slot answered while all are in use
            limit.issue()
            limit.answered(in_flight=allowed)
        rounds.append(limit.allowed)
    assert rounds == [16, 32, 64, 64, 64]


def test_a_throttling_answer_ends_slow_start_and_cuts_the_limit_once_per_round_trip() -> None:
    limit = AimdLimit(ceiling=64, limit=32, backoff=0.7)
    tickets = [limit.issue() for _ in range(32)]
    for _ in range(16):  # half of the round trip is answered (slow start grows the limit to 48) ...
        limit.answered(in_flight=32)
    # ... and half refused: the first refusal halves the limit the requests were sent under, the
    # rest of the round trip changes nothing.
    cuts = [limit.throttled(ticket, now=0.0) for ticket in tickets[16:]]
    assert cuts == [True] + [False] * 15
    assert limit.allowed == 16 and not limit.slow_start and limit.throttles == 16
    # A request sent after the cut that is refused cuts again, by the backoff factor.
    assert limit.throttled(limit.issue(), now=0.0) is True
    assert limit.allowed == 11


def test_after_slow_start_the_limit_grows_by_one_per_round_trip() -> None:
    limit = AimdLimit(ceiling=64, limit=20, backoff=0.5)
    limit.throttled(limit.issue(), now=0.0)
    assert limit.allowed == 10
    for _ in range(11):  # a round trip's worth of answers (1/limit each)
        limit.answered(in_flight=10)
    assert limit.allowed == 11


def test_the_limit_does_not_grow_while_most_of_it_is_unused() -> None:
    limit = AimdLimit(ceiling=64, limit=16)
    for _ in range(100):
        limit.answered(in_flight=3)
    assert limit.allowed == 16
    limit.answered(in_flight=8)
    assert limit.allowed == 17


def test_the_limit_stays_between_one_and_the_ceiling() -> None:
    limit = AimdLimit(ceiling=4, limit=100)
    assert limit.allowed == 4
    for _ in range(20):
        limit.throttled(limit.issue(), now=0.0)
    assert limit.allowed == 1
    with pytest.raises(ValueError):
        AimdLimit(ceiling=0)


def test_retry_after_pauses_until_then_capped() -> None:
    limit = AimdLimit(ceiling=8)
    limit.throttled(limit.issue(), now=100.0, retry_after=2.5)
    assert limit.pause_left(100.0) == 2.5 and limit.pause_left(101.0) == 1.5 and limit.pause_left(103.0) == 0
    limit.throttled(limit.issue(), now=200.0, retry_after=10_000)
    assert limit.pause_left(200.0) == MAX_PAUSE


def simulate(service_limit: int, requests: int, *, ceiling: int = 64) -> tuple[int, int, list[int]]:
    """Round trips against a service that refuses whatever is beyond ``service_limit`` in flight, with
    more work than slots (every free slot is used at once). Returns (round trips, refusals, limits)."""
    limit = AimdLimit(ceiling=ceiling)
    done = refused = trips = 0
    seen = []
    while done < requests:
        trips += 1
        sent = min(limit.allowed, requests - done)
        tickets = [limit.issue() for _ in range(sent)]
        seen.append(limit.allowed)
        accepted = min(sent, service_limit)
        for _ in tickets[:accepted]:
            limit.answered(in_flight=sent)
        for ticket in tickets[accepted:]:
            limit.throttled(ticket, now=0.0)
        done += accepted
        refused += sent - accepted
    return trips, refused, seen


def test_against_a_service_taking_16_the_limit_settles_near_16_with_few_refusals() -> None:
    trips, refused, seen = simulate(service_limit=16, requests=2000)
    assert refused < 0.05 * 2000
    assert trips < 1.3 * 2000 / 16  # near the best possible: 16 per round trip
    settled = seen[20:]
    assert min(settled) >= 8 and max(settled) <= 17


def test_an_unthrottled_service_gets_the_ceiling_within_a_few_round_trips() -> None:
    trips, refused, seen = simulate(service_limit=10_000, requests=2000)
    # Slow start doubles the limit every round trip, from the initial limit up to the ceiling (64).
    doublings = (64 // DEFAULT_INITIAL).bit_length() - 1
    assert seen[: doublings + 1] == [DEFAULT_INITIAL << n for n in range(doublings + 1)]
    assert refused == 0 and trips <= doublings + 2000 // 64 + 1


# --- the gate ------------------------------------------------------------------------------------


def test_the_gate_holds_requests_beyond_the_limit_until_a_slot_is_released() -> None:
    gate = RequestLimit(ceiling=2, initial=2)
    first, second = gate.acquire(), gate.acquire()
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(gate.acquire(timeout=10)))
    waiter.start()
    waiter.join(timeout=0.05)
    assert waiter.is_alive() and got == []
    gate.release(first, Outcome.FAILED)
    waiter.join(timeout=10)
    assert not waiter.is_alive() and len(got) == 1 and gate.in_flight == 2
    gate.release(second, Outcome.ANSWERED)
    gate.release(got[0], Outcome.ANSWERED)
    assert gate.in_flight == 0


def test_waiting_for_a_slot_is_bounded() -> None:
    clock = Clock()
    gate = RequestLimit(ceiling=1, initial=1, clock=clock)
    gate.acquire()
    with pytest.raises(SlotTimeout, match="1 requests in flight"):
        gate.acquire(timeout=0)


def test_a_paused_gate_admits_nothing_until_the_pause_ends() -> None:
    clock = Clock()
    gate = RequestLimit(ceiling=8, initial=4, clock=clock)
    ticket = gate.acquire()
    gate.release(ticket, Outcome.THROTTLED, retry_after=30)
    assert gate.throttles == 1 and gate.allowed == 2
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(gate.acquire(timeout=0)))
    waiter.start()
    waiter.join(timeout=0.05)
    assert waiter.is_alive()  # a zero timeout for a slot does not cut the pause short
    clock.now += 30
    with gate._cond:
        gate._cond.notify_all()  # the waiter's own timer is real time; wake it to read the clock
    waiter.join(timeout=10)
    assert got and gate.in_flight == 1


def test_a_throttled_large_request_shrinks_the_limit_without_a_slot() -> None:
    gate = RequestLimit(ceiling=32, initial=16)
    gate.observe(Outcome.ANSWERED)
    assert gate.allowed == 16
    gate.observe(Outcome.THROTTLED, retry_after=None)  # ends slow start: halved
    assert gate.allowed == 8 and gate.in_flight == 0
    gate.observe(Outcome.THROTTLED, retry_after=None)  # the same round trip, as far as anyone can tell
    assert gate.allowed == 8 and gate.throttles == 2
    gate.release(gate.acquire(), Outcome.THROTTLED)  # a request sent since: cut again, by backoff
    assert gate.allowed == 5
