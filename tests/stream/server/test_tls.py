"""TLS from certificate files (``server.tls_cert``/``tls_key``): the real aiohttp app behind a real certificate
(made with openssl), a real ``wss://`` client. No stream starts here, so no models are loaded."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.sync.client import connect

from emostream.stream.config import Config, override
from emostream.stream.errors import UserError
from emostream.stream.server.app import make_app, ssl_context
from emostream.stream.server.calls import Calls
from tests.stream.publishers.test_bus_security import Pki, make_pki
from tests.support.messaging import free_port

TOKEN = b"tls-token-789"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def tls_server(pki: Pki) -> Iterator[int]:
    cfg = override(Config(), server={"tls_cert": str(pki.cert), "tls_key": str(pki.key), "idle_timeout_s": 1.0})
    port, ready, loop = free_port(), threading.Event(), asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        runner = web.AppRunner(make_app(cfg, Calls(cfg, None, [], stop), (TOKEN,)))  # type: ignore[arg-type]
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context(cfg.server)).start()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    assert ready.wait(30)
    yield port
    loop.call_soon_threadsafe(stop.set)
    thread.join(30)


def test_wss_with_the_certificate_and_a_token(tls_server, pki):
    trust = ssl.create_default_context(cafile=str(pki.ca))
    url = f"wss://localhost:{tls_server}/v1/stream"
    with connect(url, ssl=trust, additional_headers={"Authorization": f"Bearer {TOKEN.decode()}"}) as ws:
        with pytest.raises(ConnectionClosed) as err:
            ws.recv(timeout=10)
        assert err.value.rcvd.code == 1001  # served over TLS, then closed for idling
    with pytest.raises(InvalidStatus) as refused:
        connect(url, ssl=trust)
    assert refused.value.response.status_code == 401
    with pytest.raises(ssl.SSLCertVerificationError):  # a client that does not trust the CA gets nothing
        connect(url, ssl=ssl.create_default_context())
    with pytest.raises((InvalidHandshake, OSError)):  # plain ws:// is not served
        connect(f"ws://localhost:{tls_server}/v1/stream", open_timeout=5)


def test_unreadable_certificate_is_a_clear_error(pki, tmp_path):
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate")
    cfg = override(Config(), server={"tls_cert": str(bad), "tls_key": str(pki.key)})
    with pytest.raises(UserError, match=r"server\.tls_cert"):
        ssl_context(cfg.server)
