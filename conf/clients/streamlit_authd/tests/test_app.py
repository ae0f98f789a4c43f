"""enforce() and require() inside a Streamlit script run (streamlit.testing's AppTest), against a
real authd: what the user sees, and that nothing after them runs when they stop the page."""

from __future__ import annotations

from typing import Any, Optional

from streamlit.testing.v1 import AppTest

import streamlit_authd


def page(url, cookie, groups):  # type: ignore[no-untyped-def]  # its source runs alone: no annotations
    # Runs as the app script: AppTest cannot give a browser's Cookie header, so the script sets it.
    import streamlit as st

    import streamlit_authd as authd

    authd._cookie_header = lambda: cookie  # type: ignore[assignment]
    user = authd.require(groups=groups, client=authd.Client(url))
    st.write(f"app output for {user.name}")


def run(url: str, cookie: str, groups: Optional[list[str]] = None) -> Any:
    at = AppTest.from_function(page, args=(url, cookie, groups), default_timeout=10)
    return at.run()


def texts(at: Any) -> str:
    parts = [e.value for e in at.error] + [e.value for e in at.warning] + [m.value for m in at.markdown]
    return "\n".join(str(p) for p in parts)


def test_live_session_runs_the_app(authd) -> None:
    at = run(authd.url, authd.login())
    assert not at.exception
    assert "app output for ada" in texts(at)


def test_ended_session_shows_the_notice_and_stops(authd) -> None:
    cookie = authd.login()
    authd.cli(["session", "revoke"], "-user", "ada")
    at = run(authd.url, cookie)
    out = texts(at)
    assert streamlit_authd.SIGNED_OUT in out
    assert "Sign in again" in out and "/authd/login?rd=" in out
    assert "app output" not in out


def test_no_cookie_shows_the_notice(authd) -> None:
    out = texts(run(authd.url, ""))
    assert streamlit_authd.SIGNED_OUT in out and "app output" not in out


def test_unreachable_authd_stops_the_page(dead_port: int) -> None:
    out = texts(run(f"http://127.0.0.1:{dead_port}", "__Host-authd_session=" + "A" * 43))
    assert streamlit_authd.UNAVAILABLE in out
    assert "app output" not in out


def test_require_refuses_other_groups(authd) -> None:
    out = texts(run(authd.url, authd.login(), ["ops"]))
    assert "signed in as ada" in out and "ops" in out
    assert "app output" not in out


def test_require_admits_any_listed_group(authd) -> None:
    out = texts(run(authd.url, authd.login(), ["ops", "sales"]))
    assert "app output for ada" in out
