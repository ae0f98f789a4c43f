"""authd demo app: greets the signed-in user from the identity headers nginx sets.

nginx asks authd about every request, including the WebSocket handshake that Streamlit reads
st.context.headers from, and puts authd's answer into Remote-User, Remote-Name, Remote-Email and
Remote-Groups after removing any copy the browser sent.
"""

import streamlit as st

st.set_page_config(page_title="authd demo", page_icon=":lock:")

headers = st.context.headers
user = headers.get("Remote-User", "")
name = headers.get("Remote-Name", "") or user
email = headers.get("Remote-Email", "")
groups = [g.strip() for g in headers.get("Remote-Groups", "").split(",") if g.strip()]

if user:
    st.title(f"Hello, {name}!")
    st.markdown(f"Signed in as **{user}**" + (f" ({email})" if email else "") + ".")
else:
    st.title("Hello!")
    st.error("No identity headers: this app should only be reached through nginx and authd.")

st.subheader("Groups")
if groups:
    st.markdown("\n".join(f"- `{g}`" for g in groups))
else:
    st.write("No groups.")

st.subheader("Upload a file")
uploaded = st.file_uploader("Any file up to the upload limit")
if uploaded is not None:
    st.success(f"Received {uploaded.name}: {uploaded.size} bytes")

st.subheader("Request headers")
st.caption("What the app saw on its WebSocket handshake (cookies and credentials not shown).")
hidden = {"cookie", "authorization"}
rows = [
    {"header": k, "value": v}
    for k in sorted(set(headers.keys()), key=str.lower)
    if k.lower() not in hidden
    for v in headers.get_all(k)
]
st.table(rows)

st.markdown('<a href="/authd/logout" target="_self">Sign out</a>', unsafe_allow_html=True)
