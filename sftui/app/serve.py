"""`sftui serve`: the same app in a browser, on localhost only, behind a random token.

Each browser tab gets its own app process (textual-serve runs `python -m sftui` under its web
driver). Every request must carry the token: the printed URL has it as `?token=`, and the page
then keeps it in a same-site, HTTP-only cookie for its assets and its websocket. Without the token
another user of the machine gets 403 and cannot pause, stop or delete runs.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import logging
import secrets
import shlex
import signal
import sys
from pathlib import Path
from urllib.parse import urlsplit

from sampler.errors import SftuiError

HOST = "127.0.0.1"
COOKIE = "sftui_token"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
FORBIDDEN = "sftui serve: open the URL that `sftui serve` printed, token included\n"


def app_command(train_dir: Path) -> str:
    return f"{shlex.quote(sys.executable)} -m sftui --train-dir {shlex.quote(str(train_dir))}"


def make_server(train_dir: Path, port: int, token: str | None = None):
    """A textual-serve Server for the app over `train_dir`, refusing requests without the token."""
    try:
        from aiohttp import web
        from textual_serve.server import Server
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise SftuiError(f"sftui serve needs textual-serve ({e.name} is missing); pip install textual-serve") from e

    class TokenServer(Server):
        def __init__(self) -> None:
            super().__init__(app_command(train_dir), host=HOST, port=port, title="sftui")
            self.token = token or secrets.token_urlsafe(24)
            self.url = f"{self.public_url}/?token={self.token}"
            self.sessions: set[asyncio.Task] = set()

        def initialize_logging(self) -> None:
            # The access log would print every URL, token included; keep warnings only.
            logging.basicConfig(level=logging.WARNING, format="sftui serve: %(message)s")

        def allowed(self, request: web.Request) -> bool:
            given = request.query.get("token") or request.cookies.get(COOKIE) or ""
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return False
            origin = request.headers.get("Origin")
            if origin is None:
                return True
            # A page on another site must not drive the app through the user's cookie.
            parts = urlsplit(origin)
            return parts.hostname in LOCAL_HOSTS and parts.port == self.port

        async def _make_app(self) -> web.Application:
            application = await super()._make_app()

            @web.middleware
            async def require_token(request: web.Request, handler):
                if not self.allowed(request):
                    raise web.HTTPForbidden(text=FORBIDDEN)
                response = await handler(request)
                if "token" in request.query and not response.prepared:
                    response.set_cookie(COOKIE, self.token, httponly=True, samesite="Strict", path="/")
                return response

            application.middlewares.append(require_token)
            return application

        async def on_startup(self, app: web.Application) -> None:
            pass  # the URL is printed once the socket listens, in serve()

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            session = asyncio.current_task()
            self.sessions.add(session)
            try:
                return await super().handle_websocket(request)
            finally:
                self.sessions.discard(session)

        async def on_shutdown(self, app: web.Application) -> None:
            # Ends each browser session now: its handler closes the websocket and stops its app
            # process, instead of the server waiting for the browser to hang up.
            for session in list(self.sessions):
                session.cancel()
            await asyncio.gather(*self.sessions, return_exceptions=True)

        def announce(self, *_: object) -> None:
            print(f"sftui serve: open {self.url}", flush=True)
            print("sftui serve: listening on localhost only; Ctrl+C stops the server (runs keep training)", flush=True)

        def serve(self, debug: bool = False) -> None:
            self.initialize_logging()
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            loop.add_signal_handler(signal.SIGINT, self.request_exit)
            loop.add_signal_handler(signal.SIGTERM, self.request_exit)
            web.run_app(self._make_app(), host=self.host, port=self.port, handle_signals=False, loop=loop,
                        print=self.announce, access_log=None)

    return TokenServer()


def serve(train_dir: Path, port: int) -> None:
    server = make_server(train_dir, port)
    try:
        server.serve()
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise SftuiError(f"port {port} is already in use; pick another with --port") from e
        raise SftuiError(f"cannot serve on {HOST}:{port}: {e.strerror or e}") from e
