"""The parts of streamlit_authd that need no running Streamlit: the user record, identity-header
parsing, and the client that asks authd whether a browser's session is still live."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping, Optional, Tuple

# authd's defaults: its listener (conf/authd.toml `listen`) and its public prefix.
DEFAULT_URL = "http://127.0.0.1:9091"
DEFAULT_PREFIX = "/authd/"
# The endpoint outside the public prefix that only trusted peers may ask.
LIVE_PATH = "/session/live"
# A script run waits at most this long for authd before the page stops.
DEFAULT_TIMEOUT = 1.0
# Answers are reused for at most this long per session cookie (the "about one second").
MAX_CACHE_SECONDS = 1.0
# Bound on remembered answers; expired ones are dropped first.
_MAX_ENTRIES = 4096


class AuthdUnavailable(Exception):
    """authd could not confirm the session: unreachable, too slow, refused, or a reply that is
    not authd's. Callers fail closed on it."""


@dataclass(frozen=True)
class User:
    """One signed-in user as authd names them.

    name is the canonical login name; display_name falls back to it; email may be "";
    groups is empty for a user in no group."""

    name: str
    display_name: str
    email: str
    groups: Tuple[str, ...]

    def in_any(self, groups: Optional[Iterable[str]]) -> bool:
        """True when groups is empty/None or the user is in at least one of them."""
        wanted = set(groups or ())
        return not wanted or bool(wanted & set(self.groups))


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        # Plain dicts are case-sensitive; Streamlit's headers are not.
        low = name.lower()
        for k, v in headers.items():
            if k.lower() == low:
                value = v
                break
    return (value or "").strip()


def parse_groups(value: str) -> Tuple[str, ...]:
    """Splits a Remote-Groups value ("a, b,,c") into its non-empty names, in order, once each."""
    seen: list[str] = []
    for g in value.split(","):
        g = g.strip()
        if g and g not in seen:
            seen.append(g)
    return tuple(seen)


def user_from_headers(headers: Mapping[str, str]) -> Optional[User]:
    """The user nginx named in the identity headers (Remote-User, Remote-Name, Remote-Email,
    Remote-Groups), or None when there is no Remote-User. nginx sets these from authd's answer
    only, after removing any copy the browser sent; they describe the session as it was when the
    page's WebSocket opened."""
    name = _header(headers, "Remote-User")
    if not name:
        return None
    return User(
        name=name,
        display_name=_header(headers, "Remote-Name") or name,
        email=_header(headers, "Remote-Email"),
        groups=parse_groups(_header(headers, "Remote-Groups")),
    )


def _user_from_answer(body: bytes) -> User:
    try:
        doc = json.loads(body)
    except ValueError as e:
        raise AuthdUnavailable("authd's answer is not JSON") from e
    if not isinstance(doc, dict) or doc.get("live") is not True:
        raise AuthdUnavailable("authd's answer does not say live")
    name, display, email, groups = doc.get("user"), doc.get("name"), doc.get("email"), doc.get("groups")
    if not isinstance(name, str) or not name or not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise AuthdUnavailable("authd's answer has no user")
    return User(
        name=name,
        display_name=display if isinstance(display, str) and display else name,
        email=email if isinstance(email, str) else "",
        groups=tuple(groups),
    )


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self._path)
        except OSError:
            s.close()
            raise
        self.sock = s


class Client:
    """Asks authd whether a browser's session is live.

    url is authd's listener: "http://127.0.0.1:9091" or "unix:/run/authd/authd.sock" (the same
    forms as authd's `listen`); None reads AUTHD_URL, then the default. Answers, live or not, are
    reused for cache_seconds (at most one second) per Cookie header; failures are never reused.
    clock is for tests."""

    def __init__(
        self,
        url: Optional[str] = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        cache_seconds: float = MAX_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url = url or os.environ.get("AUTHD_URL") or DEFAULT_URL
        self._unix: Optional[str] = None
        self._host, self._port = "", 0
        if url.startswith("unix:"):
            path = url[len("unix:"):]
            if path.startswith("//"):
                path = path[2:]
            if not path.startswith("/"):
                raise ValueError(f"authd url {url!r}: unix socket path must be absolute")
            self._unix = path
        elif url.startswith("http://"):
            hostport = url[len("http://"):].rstrip("/")
            host, sep, port = hostport.rpartition(":")
            if not sep or not port.isdigit() or "/" in hostport:
                raise ValueError(f"authd url {url!r}: want http://host:port")
            self._host, self._port = host.strip("[]"), int(port)
        else:
            raise ValueError(f"authd url {url!r}: want http://host:port or unix:/path")
        self.url = url
        self._timeout = timeout
        self._ttl = max(0.0, min(cache_seconds, MAX_CACHE_SECONDS))
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[bytes, Tuple[float, Optional[User]]] = {}

    def check(self, cookie_header: str, *, active: bool = True) -> Optional[User]:
        """The live session's user for this Cookie header, or None when there is no live session.
        active says the check follows user input (it then counts as activity for authd's idle
        timeout, throttled by authd). Raises AuthdUnavailable when authd cannot answer."""
        if not cookie_header:
            return None
        key = hashlib.sha256(cookie_header.encode("utf-8", "surrogateescape")).digest()
        now = self._clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and now < hit[0]:
                return hit[1]
        user = self._ask(cookie_header, active)
        if self._ttl > 0:
            with self._lock:
                if len(self._cache) >= _MAX_ENTRIES:
                    self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                    if len(self._cache) >= _MAX_ENTRIES:
                        self._cache.clear()
                self._cache[key] = (now + self._ttl, user)
        return user

    def _connection(self) -> http.client.HTTPConnection:
        if self._unix is not None:
            return _UnixConnection(self._unix, self._timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)

    def _ask(self, cookie_header: str, active: bool) -> Optional[User]:
        conn = self._connection()
        deadline = time.monotonic() + self._timeout
        try:
            conn.request(
                "GET",
                LIVE_PATH + ("?active=1" if active else ""),
                headers={"Cookie": cookie_header, "Accept": "application/json"},
            )
            resp = conn.getresponse()
            body = resp.read(64 * 1024)
            status = resp.status
        except (OSError, http.client.HTTPException) as e:
            raise AuthdUnavailable(f"authd at {self.url}: {e.__class__.__name__}: {e}") from e
        finally:
            conn.close()
        if time.monotonic() > deadline:
            raise AuthdUnavailable(f"authd at {self.url}: answer took longer than {self._timeout}s")
        if status == 401:
            return None
        if status == 403:
            raise AuthdUnavailable(
                f"authd at {self.url} refused the check: the app must reach authd from a trusted "
                "address (trusted_proxies, loopback or its unix socket) and not through a proxy"
            )
        if status != 200:
            raise AuthdUnavailable(f"authd at {self.url}: status {status}")
        return _user_from_answer(body)
