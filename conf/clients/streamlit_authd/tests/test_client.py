"""streamlit_authd against a real authd: live answers, revocation and locks, the one-second cache,
failing closed, and identity-header parsing."""

from __future__ import annotations

import socket
import threading
import time
from typing import Iterator

import pytest

from streamlit_authd import AuthdUnavailable, Client, User, parse_groups, user_from_headers

ADA = User(name="ada", display_name="Ada Lovelace", email="ada@example.com", groups=("sales", "staff"))


def test_live_session(authd) -> None:
    c = authd.client()
    assert c.check(authd.login()) == ADA


@pytest.mark.parametrize("cookie", [
    "",
    "__Host-authd_session=garbage",
    "__Host-authd_session=" + "A" * 43,
    "authd_session=" + "A" * 43,
    "theme=dark",
])
def test_no_live_session(authd, cookie: str) -> None:
    assert authd.client().check(cookie) is None


def test_duplicated_session_cookie_is_not_live(authd) -> None:
    cookie = authd.login()
    sess = [p for p in cookie.split("; ") if "authd_session=" in p][0]
    assert authd.client().check(cookie + "; " + sess.split("=")[0] + "=x") is None


def test_revoke_ends_it_within_the_cache_time(authd, clock) -> None:
    c = authd.client(clock=clock)
    cookie = authd.login()
    assert c.check(cookie) == ADA
    authd.cli(["session", "revoke"], "-user", "ada")
    clock.t += 0.5
    assert c.check(cookie) == ADA, "an answer is reused within the cache time"
    clock.t += 0.6
    assert c.check(cookie) is None, "after more than one second authd is asked again"


def test_lock_ends_it(authd, clock) -> None:
    c = authd.client(clock=clock)
    cookie = authd.login()
    assert c.check(cookie) == ADA
    authd.cli(["user", "lock"], "ada")
    clock.t += 1.01
    deadline = time.monotonic() + 5  # authd picks up the users file change
    while c.check(cookie) is not None:
        assert time.monotonic() < deadline, "still live 5 s after the lock"
        clock.t += 1.01
        time.sleep(0.05)


def test_cache_is_at_most_one_second(authd, clock) -> None:
    c = authd.client(clock=clock, cache_seconds=60)
    cookie = authd.login()
    assert c.check(cookie) == ADA
    authd.cli(["session", "revoke"], "-user", "ada")
    clock.t += 1.01
    assert c.check(cookie) is None, "cache_seconds above one second is capped at one"


def test_cache_is_per_cookie(authd, clock) -> None:
    c = authd.client(clock=clock)
    live = authd.login()
    assert c.check(live) == ADA
    assert c.check("__Host-authd_session=" + "B" * 43) is None


def test_untrusted_app_is_refused(untrusting_authd) -> None:
    c = untrusting_authd.client()
    with pytest.raises(AuthdUnavailable, match="trusted"):
        c.check(untrusting_authd.login())


def test_unreachable_fails_closed_and_is_not_cached(dead_port: int, clock) -> None:
    c = Client(f"http://127.0.0.1:{dead_port}", clock=clock)
    for _ in range(2):
        with pytest.raises(AuthdUnavailable):
            c.check("__Host-authd_session=" + "A" * 43)


def test_missing_socket_fails_closed(tmp_path) -> None:
    with pytest.raises(AuthdUnavailable):
        Client(f"unix:{tmp_path}/nothing.sock").check("__Host-authd_session=x")


class FakeAuthd:
    """A listener that answers every request with one canned reply (or never)."""

    def __init__(self, reply: bytes | None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.recv(65536)
            if self.reply is None:
                self.held.append(conn)  # never answer
                continue
            conn.sendall(self.reply)
            conn.close()

    def close(self) -> None:
        self.sock.close()
        for c in self.held:
            c.close()


def http_reply(status: str, body: str) -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n{body}").encode()


@pytest.fixture
def fake() -> Iterator[type]:
    made: list[FakeAuthd] = []

    def make(reply: bytes | None) -> FakeAuthd:
        f = FakeAuthd(reply)
        made.append(f)
        return f
    yield make  # type: ignore[misc]
    for f in made:
        f.close()


@pytest.mark.parametrize("reply", [
    http_reply("500 Internal Server Error", "{}"),
    http_reply("502 Bad Gateway", ""),
    http_reply("503 Service Unavailable", '{"live": false, "error": "session store unavailable"}'),
    http_reply("200 OK", "not json"),
    http_reply("200 OK", '{"live": false, "user": "ada", "groups": []}'),
    http_reply("200 OK", '{"live": "yes", "user": "ada", "groups": []}'),
    http_reply("200 OK", '{"live": true, "groups": []}'),
    http_reply("200 OK", '{"live": true, "user": "ada", "groups": "sales"}'),
    http_reply("302 Found", ""),
    b"garbage\r\n\r\n",
], ids=["500", "502", "503 store down", "not json", "live false", "live not bool", "no user", "groups not list", "redirect", "not http"])
def test_bad_answers_fail_closed(fake, reply: bytes) -> None:
    f = fake(reply)
    with pytest.raises(AuthdUnavailable):
        Client(f"http://127.0.0.1:{f.port}").check("__Host-authd_session=x")


def test_slow_authd_fails_closed_within_the_timeout(fake) -> None:
    f = fake(None)
    c = Client(f"http://127.0.0.1:{f.port}", timeout=0.3)
    start = time.monotonic()
    with pytest.raises(AuthdUnavailable):
        c.check("__Host-authd_session=x")
    assert time.monotonic() - start < 1.0


def test_answer_parsing(fake) -> None:
    f = fake(http_reply("200 OK", '{"live": true, "user": "bo", "name": "", "email": null, "groups": []}'))
    assert Client(f"http://127.0.0.1:{f.port}").check("c=1") == User("bo", "bo", "", ())


@pytest.mark.parametrize("url", ["https://127.0.0.1:9091", "127.0.0.1:9091", "http://127.0.0.1", "unix:relative.sock",
                                 "http://127.0.0.1:9091/path"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        Client(url)


def test_url_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("AUTHD_URL", "unix:/run/authd/authd.sock")
    assert Client().url == "unix:/run/authd/authd.sock"
    monkeypatch.delenv("AUTHD_URL")
    assert Client().url == "http://127.0.0.1:9091"


@pytest.mark.parametrize("headers,want", [
    ({"Remote-User": "ada", "Remote-Name": "Ada Lovelace", "Remote-Email": "ada@example.com",
      "Remote-Groups": "sales,staff"}, ADA),
    ({"remote-user": "ada", "REMOTE-GROUPS": " sales , staff ,, sales"}, User("ada", "ada", "", ("sales", "staff"))),
    ({"Remote-User": "ada"}, User("ada", "ada", "", ())),
    ({"Remote-User": ""}, None),
    ({"Remote-User": "   "}, None),
    ({"X-Remote-User": "mallory", "Remote-Name": "Mallory"}, None),
    ({}, None),
])
def test_user_from_headers(headers: dict, want) -> None:
    assert user_from_headers(headers) == want


@pytest.mark.parametrize("value,want", [
    ("", ()), ("a", ("a",)), ("a,b", ("a", "b")), (" a , ,b,a ", ("a", "b")),
])
def test_parse_groups(value: str, want: tuple) -> None:
    assert parse_groups(value) == want


@pytest.mark.parametrize("groups,want", [
    (None, True), ([], True), (["sales"], True), (["ops", "staff"], True), (["ops"], False),
])
def test_in_any(groups, want: bool) -> None:
    assert ADA.in_any(groups) is want
