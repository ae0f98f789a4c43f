"""authd demo app: greets the signed-in user, with the streamlit_authd package.

nginx asks authd about every request, including the WebSocket handshake that Streamlit reads
st.context.headers from, and puts authd's answer into Remote-User, Remote-Name, Remote-Email and
Remote-Groups after removing any copy the browser sent. An open page's WebSocket is not asked
again, so streamlit_authd.require() confirms with authd on every script run (every widget
interaction) that the session is still live: a revoked, locked or timed-out user sees the
signed-out notice instead of the app.

The same file runs as several apps (the quick start's /, /sales/ and /ops/):
    AUTHD_APP_TITLE   the app's title (default "authd demo")
    AUTHD_APP_GROUPS  comma-separated groups that may use it (default: any signed-in user);
                      authd's rules for the app's path say the same, this is the app's own check
"""

import json
import os

import streamlit as st

import streamlit_authd as authd

title = os.environ.get("AUTHD_APP_TITLE", "authd demo")
st.set_page_config(page_title=title, page_icon=":lock:")

user = authd.require(groups=authd.parse_groups(os.environ.get("AUTHD_APP_GROUPS", "")))

st.caption(title)
st.title(f"Hello, {user.display_name}!")
st.markdown(f"Signed in as **{user.name}**" + (f" ({user.email})" if user.email else "") + ".")

st.subheader("Groups")
if user.groups:
    st.markdown("\n".join(f"- `{g}`" for g in user.groups))
else:
    st.write("No groups.")

st.subheader("Say hello")
if st.button("Say hello"):
    st.session_state["hellos"] = st.session_state.get("hellos", 0) + 1
if st.session_state.get("hellos"):
    st.write(f"Hello again, {user.display_name} (#{st.session_state['hellos']})")

st.subheader("Upload a file")
uploaded = st.file_uploader("Any file up to the upload limit")
if uploaded is not None:
    st.success(f"Received {uploaded.name}: {uploaded.size} bytes")

st.subheader("st.user")
st.caption("Streamlit's own user record, from server.trustedUserHeaders in .streamlit/config.toml.")
st.code(json.dumps(st.user.to_dict(), sort_keys=True), language="json")

st.subheader("Request headers")
st.caption("What the app saw on its WebSocket handshake (cookies and credentials not shown).")
headers = st.context.headers
hidden = {"cookie", "authorization"}
rows = [
    {"header": k, "value": v}
    for k in sorted(set(headers.keys()), key=str.lower)
    if k.lower() not in hidden
    for v in headers.get_all(k)
]
st.table(rows)

authd.sign_out_button()
