#!/usr/bin/env python3
"""Sign requests for authd (AUTHD2-HMAC-SHA256). Standard library only.

    from authd_sign import sign
    auth = sign("GET", "https://api.example.com/v1/items?b=2&a=1", key_id, secret)
    urllib.request.Request(url, headers={"Authorization": auth})

Command line (prints the header line, ready for curl -H):

    python3 authd_sign.py -key ak_... -secret-file key.secret [-method GET] URL
    python3 authd_sign.py -key ak_... -secret-file key.secret -fetch URL

Pass the URL exactly as it goes on the wire and send exactly that URL: the
path and query are signed byte for byte (parameter order, "+" versus "%20",
"%2f" versus "%2F" all count), so percent-encode anything outside ASCII
yourself and don't let an HTTP library re-encode the URL (python-requests
does; urllib.request and curl send it as given). The signature covers method,
path, query, host, timestamp, nonce and key id; never the body.
"""

import argparse
import hashlib
import hmac
import re
import secrets
import sys
import time
import urllib.error
import urllib.request

SCHEME = "AUTHD2-HMAC-SHA256"
_ID = re.compile(r"[A-Za-z0-9_-]+\Z")


def canonical_host(authority: str) -> str:
    if authority.startswith("["):
        name, sep, port = authority.partition("]")
        name += sep
        if not sep or not re.fullmatch(r"\[[0-9A-Fa-f:.]+\]", name):
            raise ValueError("host has an invalid IPv6 literal")
    else:
        name, sep, port = authority.partition(":")
        port = sep + port
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,255}", name):
            raise ValueError("host name may contain only A-Z a-z 0-9 . - _ (use punycode)")
    if port and not re.fullmatch(r":[0-9]{0,5}", port):
        raise ValueError("host has an invalid port")
    return name.lower()


def string_to_sign(method: str, url: str, key_id: str, ts: int, nonce: str) -> bytes:
    """The exact bytes that are signed; print it when a signature is refused."""
    if not re.fullmatch(r"[A-Za-z_-]{1,32}", method):
        raise ValueError("method must be 1-32 letters")
    if not (16 <= len(nonce) <= 64 and _ID.match(nonce)):
        raise ValueError("nonce must be 16-64 characters of A-Z a-z 0-9 _ -")
    if not (1 <= len(key_id) <= 64 and _ID.match(key_id)):
        raise ValueError("key id must be 1-64 characters of A-Z a-z 0-9 _ -")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise ValueError("URL must start with http:// or https://")
    m = re.search(r"[/?#]", rest)
    end = m.start() if m else len(rest)
    authority, uri = rest[:end], rest[end:]
    if "@" in authority:
        raise ValueError("URL must not contain user information")
    uri = uri.partition("#")[0]
    if not uri or uri.startswith("?"):
        uri = "/" + uri
    target = uri.encode("utf-8")
    if any(c <= 0x20 or c == 0x7F for c in target):
        raise ValueError("request URI contains a space or control character")
    fields = [
        SCHEME.encode(), method.upper().encode(), target,
        canonical_host(authority).encode(), str(int(ts)).encode(), nonce.encode(), key_id.encode(),
    ]
    return b"\n".join(fields)


def sign(method, url, key_id, secret, ts=None, nonce=None) -> str:
    """Return the Authorization header value for one request.

    secret is the key's secret exactly as authd printed it (str or bytes);
    ts defaults to now (unix seconds) and nonce to a fresh random one.
    """
    if ts is None:
        ts = int(time.time())
    if nonce is None:
        nonce = secrets.token_urlsafe(16)
    if isinstance(secret, str):
        secret = secret.encode("ascii")
    sts = string_to_sign(method, url, key_id, ts, nonce)
    sig = hmac.new(secret, sts, hashlib.sha256).hexdigest()
    return "%s KeyId=%s, Timestamp=%d, Nonce=%s, Signature=%s" % (SCHEME, key_id, int(ts), nonce, sig)


def main(argv=None):
    p = argparse.ArgumentParser(description="Sign a request for authd.")
    p.add_argument("-key", required=True, help="key id (ak_...)")
    p.add_argument("-secret-file", help="file holding the secret (default: read one line from stdin)")
    p.add_argument("-method", default="GET")
    p.add_argument("-fetch", action="store_true", help="send the request with urllib and print the response")
    p.add_argument("url")
    a = p.parse_args(argv)
    if a.secret_file:
        with open(a.secret_file, encoding="ascii") as f:
            secret = f.read().strip()
    else:
        secret = sys.stdin.readline().strip()
    auth = sign(a.method, a.url, a.key, secret)
    if not a.fetch:
        print("Authorization: " + auth)
        return 0
    req = urllib.request.Request(a.url, method=a.method.upper(), headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            print(resp.status, file=sys.stderr)
            sys.stdout.buffer.write(resp.read())
            return 0
    except urllib.error.HTTPError as e:
        print(e.code, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
