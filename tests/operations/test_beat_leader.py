"""The beat lease: one holder at a time, renewed by its holder, free once released or
run out (the database's clock decides)."""

import time

import pytest

from operations.beat_leader import beat_lease_release, beat_lease_take

pytestmark = pytest.mark.django_db


def test_one_holder_at_a_time_and_the_holder_renews():
    assert beat_lease_take(holder="a", seconds=30)
    assert not beat_lease_take(holder="b", seconds=30)
    assert beat_lease_take(holder="a", seconds=30)
    assert not beat_lease_take(holder="b", seconds=30)


def test_a_released_lease_is_free_at_once():
    assert beat_lease_take(holder="a", seconds=30)
    beat_lease_release(holder="a")
    assert beat_lease_take(holder="b", seconds=30)
    beat_lease_release(holder="a")  # not a's any more: changes nothing
    assert not beat_lease_take(holder="a", seconds=30)


def test_a_lease_not_renewed_runs_out():
    assert beat_lease_take(holder="a", seconds=0.2)
    assert not beat_lease_take(holder="b", seconds=0.2)
    time.sleep(0.4)
    assert beat_lease_take(holder="b", seconds=30)
    assert not beat_lease_take(holder="a", seconds=30)
