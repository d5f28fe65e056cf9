"""`sftui serve`: localhost only, a token on every request, and no app process outlives the server."""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

aiohttp = pytest.importorskip("aiohttp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sftui", "serve", "--train-dir", str(tmp_path), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    match = re.search(r"open (http://127\.0\.0\.1:(\d+)/)\?token=(\S+)", line)
    assert match, line
    yield proc, match.group(1), match.group(3)
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


async def status_of(url: str, **kwargs) -> int:
    async with aiohttp.ClientSession() as session, session.get(url, **kwargs) as response:
        return response.status


def test_requests_without_the_token_are_refused(server):
    proc, base, token = server
    assert asyncio.run(status_of(base)) == 403
    assert asyncio.run(status_of(base, params={"token": "x" + token})) == 403
    assert asyncio.run(status_of(base + "static/js/textual.js")) == 403
    assert asyncio.run(status_of(base + "ws")) == 403
    assert asyncio.run(status_of(base, params={"token": token}, headers={"Origin": "http://evil.example"})) == 403
    listening = [c.laddr for c in psutil.Process(proc.pid).net_connections() if c.status == psutil.CONN_LISTEN]
    assert listening and all(addr.ip == "127.0.0.1" for addr in listening)


def test_the_token_opens_the_app_and_the_app_dies_with_the_server(server):
    proc, base, token = server

    async def session() -> tuple[bytes, list[int]]:
        # Browsers keep cookies for 127.0.0.1; aiohttp's jar needs unsafe=True to do the same.
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as client:
            async with client.get(base, params={"token": token}) as response:
                assert response.status == 200
                assert "sftui_token" in response.cookies
            async with client.get(base + "static/js/textual.js") as response:
                assert response.status == 200  # the cookie now carries the token
            ws = await client.ws_connect(base.replace("http", "ws") + "ws", params={"width": "100", "height": "30"})
            received = b""
            deadline = time.monotonic() + 30
            while b"sftui" not in received and time.monotonic() < deadline:
                message = await ws.receive(timeout=30)
                if message.type == aiohttp.WSMsgType.BINARY:
                    received += message.data
                elif message.type == aiohttp.WSMsgType.TEXT:
                    received += message.data.encode()
                else:
                    break
            children = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
            proc.send_signal(signal.SIGINT)
            while not ws.closed:  # the server hangs up the session itself
                await ws.receive(timeout=20)
            return received, children

    received, children = asyncio.run(session())
    assert b"sftui" in received  # the app drew its screen
    assert children, "no app process was started for the websocket"
    assert proc.wait(20) == 0
    _, alive = psutil.wait_procs([psutil.Process(pid) for pid in children if psutil.pid_exists(pid)], timeout=10)
    assert not alive, f"app processes outlived the server: {alive}"


def test_a_port_in_use_is_one_clear_line(server, tmp_path):
    _, base, _ = server
    port = base.rstrip("/").rsplit(":", 1)[1]
    result = subprocess.run([sys.executable, "-m", "sftui", "serve", "--train-dir", str(tmp_path), "--port", port],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.strip() == f"sftui: port {port} is already in use; pick another with --port"
