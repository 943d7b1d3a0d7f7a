"""Shared fixtures: real components only (a mosquitto broker, MQTT and ZeroMQ subscribers, dialogue audio).

Fixtures
--------
- ``mosquitto`` (session): a running :class:`MosquittoBroker` (``.host``, ``.port``, ``.url``, ``.stop()``,
  ``.start()``). A test that stops it must start it again; ``mqtt_collector`` restarts it if needed.
- ``mqtt_collector``: factory ``(topic_filter="#", qos=1) -> MqttCollector``, subscribed (SUBACK received) on return.
- ``zmq_collector``: factory ``(endpoint, prefix="", *, bind=False, timeout_s=120) -> ZmqCollector``, a SUB socket
  in another process; ``.stop()`` returns the received ``ZmqMessage`` list.
- ``ravdess_dialogue`` / ``mixed_dialogue`` / ``example_dialogue`` (session): :class:`Dialogue` objects with exact
  ground truth (built into a session temp dir; the first two skip without RAVDESS).

``free_port()`` is a plain function: ``from tests.support.messaging import free_port``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support import dialogues as dlg
from tests.support.messaging import (
    MosquittoBroker,
    MqttCollector,
    ZmqCollector,
    free_port,
)

__all__ = ["free_port"]


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoBroker]:
    """A real mosquitto broker on a free localhost port for the whole session."""
    binary = dlg.require_binary("mosquitto")
    broker = MosquittoBroker(binary, tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def mqtt_collector(mosquitto: MosquittoBroker) -> Iterator[Callable[..., MqttCollector]]:
    """Factory of MQTT subscribers on the session broker; each is subscribed before it is returned."""
    made: list[MqttCollector] = []

    def make(topic_filter: str = "#", qos: int = 1, timeout_s: float = 10.0) -> MqttCollector:
        mosquitto.start()  # no-op when running; recovers from a test that left it stopped
        c = MqttCollector(mosquitto.host, mosquitto.port, topic_filter, qos=qos, timeout_s=timeout_s)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


@pytest.fixture
def zmq_collector() -> Iterator[Callable[..., ZmqCollector]]:
    """Factory of ZeroMQ SUB collectors, each in its own process; all are stopped at teardown."""
    made: list[ZmqCollector] = []

    def make(endpoint: str, prefix: str = "", *, bind: bool = False, timeout_s: float = 120.0) -> ZmqCollector:
        c = ZmqCollector(endpoint, prefix, bind=bind, timeout_s=timeout_s)
        made.append(c)
        return c

    yield make
    for c in made:
        c.stop()


@pytest.fixture(scope="session")
def ravdess_dialogue(tmp_path_factory: pytest.TempPathFactory) -> dlg.Dialogue:
    """Mono FLAC: 8 alternating turns of held-out RAVDESS actors 23 and 24."""
    return dlg.ravdess_dialogue(tmp_path_factory.mktemp("dialogues"))


@pytest.fixture(scope="session")
def mixed_dialogue(tmp_path_factory: pytest.TempPathFactory) -> dlg.Dialogue:
    """Mono FLAC: 8 alternating turns, espeak-ng (varied text) and RAVDESS actor 24."""
    return dlg.mixed_dialogue(tmp_path_factory.mktemp("dialogues"))


@pytest.fixture(scope="session")
def example_dialogue() -> dlg.Dialogue:
    """The bundled ``examples/call_center.flac`` and its ground truth."""
    if not dlg.EXAMPLE_JSON.exists():
        pytest.skip(f"{dlg.EXAMPLE_JSON} is missing (run examples/build_example.py)")
    return dlg.example_dialogue()
