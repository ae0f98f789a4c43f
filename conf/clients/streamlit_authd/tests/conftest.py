"""A real authd for the package's tests: built from this checkout (or AUTHD_BIN), started on a free
loopback port or a unix socket, with one user, and a login that yields a browser's Cookie header."""

from __future__ import annotations

import http.client
import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlencode

import pytest

from streamlit_authd.client import Client, _UnixConnection

REPO = Path(__file__).resolve().parents[4]
PASSWORD = "correct horse battery staple"
PUBLIC_URL = "https://app.example.com"


@pytest.fixture(scope="session")
def authd_bin(tmp_path_factory: pytest.TempPathFactory) -> str:
    if os.environ.get("AUTHD_BIN"):
        return os.environ["AUTHD_BIN"]
    if not shutil.which("go"):
        pytest.fail("go not found: set AUTHD_BIN to a built authd")
    out = tmp_path_factory.mktemp("bin") / "authd"
    subprocess.run(["go", "build", "-o", str(out), "./authd"], cwd=REPO, check=True)
    return str(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Authd:
    bin: str
    conf: Path
    url: str  # what Client takes
    proc: subprocess.Popen

    def cli(self, words: "list[str]", *args: str, stdin: str = "") -> str:
        """Runs `authd WORDS -config CONF ARGS`, as an operator would."""
        r = subprocess.run([self.bin, *words, "-config", str(self.conf), *args], input=stdin,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"authd {' '.join(words + list(args))}: {r.returncode}\n{r.stdout}{r.stderr}")
        return r.stdout

    def conn(self) -> http.client.HTTPConnection:
        if self.url.startswith("unix:"):
            return _UnixConnection(self.url[len("unix:"):], 5)
        host, port = self.url[len("http://"):].rsplit(":", 1)
        return http.client.HTTPConnection(host, int(port), timeout=5)

    def login(self, user: str = "ada", password: str = PASSWORD) -> str:
        """Logs in as a browser would and returns the Cookie header the browser would send."""
        c = self.conn()
        c.request("GET", "/authd/login?rd=%2F")
        r = c.getresponse()
        body = r.read().decode()
        pre = next(v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie" and "authd_pre" in v)
        csrf = re.search(r'name="csrf" value="([^"]+)"', body).group(1)
        c.request("POST", "/authd/login",
                  body=urlencode({"username": user, "password": password, "rd": "/", "csrf": csrf}),
                  headers={"Content-Type": "application/x-www-form-urlencoded", "Cookie": pre,
                           "Origin": PUBLIC_URL, "Sec-Fetch-Site": "same-origin"})
        r = c.getresponse()
        r.read()
        c.close()
        assert r.status == 303, f"login: got {r.status}, want 303"
        sess = next(v.split(";")[0] for k, v in r.getheaders() if k.lower() == "set-cookie" and "authd_session=" in v)
        # A browser sends other cookies too; authd must pick its own.
        return f"_streamlit_xsrf=2|abc|def; {sess}; theme=dark"

    def client(self, **kw) -> Client:
        return Client(self.url, **kw)


def start_authd(bin: str, dir: Path, listen: str, url: str, extra: str = "") -> Authd:
    (dir / "data").mkdir(mode=0o700)
    users = dir / "users.toml"
    users.write_text("")
    users.chmod(0o600)
    conf = dir / "authd.toml"
    conf.write_text(f'''listen = "{listen}"
public_url = "{PUBLIC_URL}"
data_dir = "{dir / 'data'}"
users_file = "{users}"
{extra}
''')
    conf.chmod(0o600)
    a = Authd(bin=bin, conf=conf, url=url, proc=None)  # type: ignore[arg-type]
    a.cli(["user", "add"], "-groups", "sales,staff", "-email", "ada@example.com", "-name", "Ada Lovelace", "ada",
          stdin=PASSWORD + "\n")
    log = open(dir / "authd.log", "w")
    a.proc = subprocess.Popen([bin, "serve", "-config", str(conf)], stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    deadline = time.monotonic() + 15
    while True:
        try:
            c = a.conn()
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                c.close()
                return a
        except OSError:
            pass
        if a.proc.poll() is not None or time.monotonic() > deadline:
            a.proc.kill()
            raise AssertionError("authd did not start:\n" + (dir / "authd.log").read_text())
        time.sleep(0.1)


def stop(a: Authd) -> None:
    a.proc.terminate()
    try:
        a.proc.wait(10)
    except subprocess.TimeoutExpired:
        a.proc.kill()


@pytest.fixture(params=["tcp", "unix"])
def authd(request: pytest.FixtureRequest, authd_bin: str, tmp_path: Path) -> Iterator[Authd]:
    """authd on a loopback port, and again on a unix socket: the package reaches it either way."""
    if request.param == "tcp":
        port = free_port()
        a = start_authd(authd_bin, tmp_path, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}")
    else:
        sock = tmp_path / "authd.sock"
        a = start_authd(authd_bin, tmp_path, f"unix:{sock}", f"unix:{sock}")
    yield a
    stop(a)


@pytest.fixture
def untrusting_authd(authd_bin: str, tmp_path: Path) -> Iterator[Authd]:
    """authd that trusts no proxy on loopback: an app there may not ask."""
    port = free_port()
    a = start_authd(authd_bin, tmp_path, f"127.0.0.1:{port}", f"http://127.0.0.1:{port}",
                    extra='trusted_proxies = ["10.0.0.0/8"]')
    yield a
    stop(a)


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def dead_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()
