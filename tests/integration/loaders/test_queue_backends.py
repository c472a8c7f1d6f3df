"""One suite, two real backends: the Postgres queue and Azure Storage Queue on Azurite."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import Engine

import loaders
from stockdata.errors import PermanentError
from tests._services import Azurite
from tests.integration.loaders._pipeline import open_queue, queue_name


@pytest.fixture(params=["postgres", "azure"])
def backend(request: pytest.FixtureRequest, db: Engine) -> Iterator[tuple[str, Azurite | None]]:
    azurite = request.getfixturevalue("azurite") if request.param == "azure" else None
    return request.param, azurite


@pytest.fixture
def make(backend: tuple[str, Azurite | None], db: Engine):  # type: ignore[no-untyped-def]
    kind, azurite = backend
    name = queue_name()
    return lambda suffix="": open_queue(kind, engine=db, azurite=azurite, name=name + suffix)


def test_send_receive_hides_the_message_until_deleted(make) -> None:  # type: ignore[no-untyped-def]
    q = make()
    q.send('{"n": 1}')
    assert q.depth() == 1
    [msg] = q.receive(visibility_timeout=30)
    assert (msg.body, msg.dequeue_count) == ('{"n": 1}', 1)
    assert q.receive(visibility_timeout=30) == []
    assert q.depth() == 1
    q.delete(msg)
    assert q.depth() == 0
    assert q.receive(visibility_timeout=30) == []


def test_visibility_timeout_redelivers_and_a_stale_holder_cannot_delete(make) -> None:  # type: ignore[no-untyped-def]
    q = make()
    q.send("job")
    [first] = q.receive(visibility_timeout=1)
    time.sleep(1.5)
    [second] = q.receive(visibility_timeout=30)
    assert (second.id, second.body, second.dequeue_count) == (first.id, "job", 2)
    with pytest.raises(loaders.StaleMessageError):
        q.delete(first)
    with pytest.raises(loaders.StaleMessageError):
        q.renew(first, visibility_timeout=30)
    q.delete(second)
    assert q.depth() == 0


def test_renew_hands_out_a_new_receipt_and_keeps_the_message_hidden(make) -> None:  # type: ignore[no-untyped-def]
    q = make()
    q.send("long job")
    [msg] = q.receive(visibility_timeout=1)
    renewed = q.renew(msg, visibility_timeout=30)
    assert renewed.id == msg.id
    assert renewed.receipt != msg.receipt
    time.sleep(1.5)
    assert q.receive(visibility_timeout=30) == []
    q.delete(renewed)
    assert q.depth() == 0


def test_release_makes_the_message_visible_again_with_its_count(make) -> None:  # type: ignore[no-untyped-def]
    q = make()
    q.send("retry me")
    [msg] = q.receive(visibility_timeout=30)
    q.release(msg, delay=0)
    [again] = q.receive(visibility_timeout=30)
    assert (again.id, again.dequeue_count) == (msg.id, 2)
    q.release(again, delay=30)
    assert q.receive(visibility_timeout=30) == []
    assert q.depth() == 1


def test_dead_letter_moves_the_message_to_the_poison_queue(make) -> None:  # type: ignore[no-untyped-def]
    q = make()
    q.send("poison")
    q.send("fine")
    [msg] = q.receive(visibility_timeout=30)
    assert msg.body == "poison"
    q.dead_letter(msg)
    assert q.depth() == 1
    poison = make("-poison")
    assert poison.name == q.name + "-poison"
    [dead] = poison.receive(visibility_timeout=30)
    assert (dead.body, dead.dequeue_count) == ("poison", 1)


def test_concurrent_receivers_never_get_the_same_message(make) -> None:  # type: ignore[no-untyped-def]
    q = make()
    for i in range(6):
        q.send(f"m{i}")
    a, b = make(), make()
    got = []
    for _ in range(3):
        got += a.receive(visibility_timeout=30)
        got += b.receive(visibility_timeout=30)
    assert sorted(m.body for m in got) == [f"m{i}" for i in range(6)]
    assert {m.dequeue_count for m in got} == {1}


def test_oversized_payload_is_refused_before_sending(make) -> None:  # type: ignore[no-untyped-def]
    q = make()
    with pytest.raises(PermanentError) as info:
        q.send("x" * (loaders.MAX_MESSAGE_BYTES + 1))
    assert "exceeds 65536" in str(info.value)
    assert q.depth() == 0
