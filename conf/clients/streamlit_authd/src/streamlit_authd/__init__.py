"""Sign-in for Streamlit apps behind nginx and authd.

    import streamlit_authd as authd

    user = authd.require(groups=["sales"])   # stops the page unless the session is live and allowed
    st.write(f"Hello, {user.display_name}")
    authd.sign_out_button()

nginx asks authd about a page's WebSocket only when it opens, so a page left open would keep
working after its session is revoked, locked or expired. require() (and enforce()) ask authd on
every script run — every widget interaction — whether the browser's session is still live, over
loopback or authd's unix socket, with the browser's session cookie; an answer is reused for at
most one second; when authd cannot answer, the page stops (fail closed).

Streamlit runs some code outside the script's top: widget callbacks (on_click, on_change) run
before it, and a widget inside an @st.fragment reruns only the fragment. Call authd.enforce() at
the start of such callbacks and fragments too, or keep side effects in the script body after
require(). A fragment with run_every is a timer, not the user: use enforce(active=False) there so it
does not keep an idle session alive.

Settings come from the environment of the Streamlit process:
    AUTHD_URL     authd's listener: http://127.0.0.1:9091 (default) or unix:/run/authd/authd.sock
    AUTHD_PREFIX  authd's public prefix for the sign-in and sign-out links (default /authd/)
"""

from __future__ import annotations

import html
import logging
import os
import threading
from typing import Iterable, Optional
from urllib.parse import quote, urlsplit

import streamlit as st

from .client import (
    DEFAULT_PREFIX,
    AuthdUnavailable,
    Client,
    User,
    parse_groups,
    user_from_headers,
)

__all__ = [
    "AuthdUnavailable",
    "Client",
    "User",
    "current_user",
    "enforce",
    "parse_groups",
    "require",
    "sign_out_button",
    "user_from_headers",
]

# The messages a user sees; tests look for them.
SIGNED_OUT = "You are signed out. Your session has ended (signed out, revoked, locked or timed out)."
UNAVAILABLE = "Sign-in could not be confirmed right now, so this page is stopped. Try again in a moment."
FORBIDDEN = "You are signed in as {user}, but this app is only for members of: {groups}."

_log = logging.getLogger("streamlit_authd")
_default_lock = threading.Lock()
_default: Optional[Client] = None


def _client() -> Client:
    # One client per Streamlit process, so every session shares the one-second cache.
    global _default
    with _default_lock:
        if _default is None:
            _default = Client()
        return _default


def _prefix() -> str:
    p = os.environ.get("AUTHD_PREFIX") or DEFAULT_PREFIX
    if not p.startswith("/"):
        p = "/" + p
    return p if p.endswith("/") else p + "/"


def _cookie_header() -> str:
    """The browser's Cookie header as the page's WebSocket handshake carried it."""
    headers = st.context.headers
    lines = headers.get_all("Cookie") if hasattr(headers, "get_all") else [headers.get("Cookie") or ""]
    value = "; ".join(v for v in lines if v)
    if value:
        return value
    cookies = st.context.cookies
    return "; ".join(f"{k}={v}" for k, v in cookies.items())


def _return_path() -> str:
    """The page's path and query, for the sign-in link's return path; "/" if unknown."""
    url = getattr(st.context, "url", None) or ""
    parts = urlsplit(url)
    path = parts.path or "/"
    return path + ("?" + parts.query if parts.query else "")


def current_user() -> Optional[User]:
    """The user nginx named in the identity headers of this page's WebSocket handshake, or None.
    It is not re-checked: use require() or enforce() to know the session is still live."""
    return user_from_headers(st.context.headers)


def _link(href: str, label: str) -> None:
    # target=_self: a full navigation, so nginx and authd see it (a new tab would leave this one).
    st.markdown(f'<a href="{html.escape(href)}" target="_self">{html.escape(label)}</a>', unsafe_allow_html=True)


def enforce(client: Optional[Client] = None, *, active: bool = True) -> User:
    """Confirms with authd that this browser's session is still live and returns its user, as
    authd knows them now. Otherwise it shows the signed-out notice with a sign-in link, or the
    unavailable message, and stops the script: nothing after it runs.

    active=True (a script run after user input) counts as activity for authd's idle timeout;
    pass False from timers (st.fragment(run_every=...)), which are not the user at work."""
    c = client or _client()
    try:
        user = c.check(_cookie_header(), active=active)
    except AuthdUnavailable as e:
        # The operator needs the reason; the user gets the generic message.
        _log.warning("session check failed, page stopped: %s", e)
        st.error(UNAVAILABLE)
        st.stop()
        raise  # st.stop() raises; this keeps type checkers and odd runtimes honest
    if user is None:
        st.warning(SIGNED_OUT)
        _link(_prefix() + "login?rd=" + quote(_return_path(), safe=""), "Sign in again")
        st.stop()
        raise RuntimeError("st.stop() returned")
    return user


def require(
    groups: Optional[Iterable[str]] = None, client: Optional[Client] = None, *, active: bool = True
) -> User:
    """enforce(), then: unless groups is empty, the user must be in at least one of them, or the
    script stops with a message saying so. Group membership is authd's current answer, not the
    one from when the page opened."""
    user = enforce(client, active=active)
    wanted = tuple(groups or ())
    if not user.in_any(wanted):
        st.error(FORBIDDEN.format(user=user.name, groups=", ".join(wanted)))
        st.stop()
        raise RuntimeError("st.stop() returned")
    return user


def sign_out_button(label: str = "Sign out") -> None:
    """A link to authd's sign-out page (it asks for confirmation, then ends the session)."""
    _link(_prefix() + "logout", label)
