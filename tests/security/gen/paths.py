#!/usr/bin/env python3
"""Writes testdata/paths.txt: request targets sent byte for byte through nginx against the suite's
rule set (/public public, /admin for the admins group, /office for the office network and any login, /app and
/ws for any login, nothing else), each with the outcome it must have.

The expectation comes from a small model of the rules: the query is ignored; percent-escapes are
decoded once; a path that could be read two ways (encoded slash, backslash or dot, "%" left after
decoding, control bytes, a ";" anywhere (servlet-style path parameters), any "." or ".." segment) is
denied; slashes are merged; then the first matching rule decides. Dot segments are refused, not
resolved: nginx passes them to the app unresolved, and how the app reads them is its own business.
Expectations:

  public  anonymous, ada and root all reach the app
  admin   anonymous must log in, ada is refused, root reaches the app
  app     anonymous must log in, ada and root reach the app
  deny    nobody reaches the app (login, 403, or nginx refuses the request)

Run it to regenerate; hand-written cases go at the end of the output file.
"""
import itertools, os, re, urllib.parse

def model(target):
    raw = target.split("?", 1)[0]
    if not raw.startswith("/") or "#" in raw or "\\" in raw or any(ord(c) < 0x21 or ord(c) == 0x7f for c in raw):
        return "deny"
    out = bytearray()
    i = 0
    b = raw.encode("utf-8")
    while i < len(b):
        c = b[i]
        if c == ord("%"):
            h = b[i+1:i+3]
            if len(h) < 2 or not re.fullmatch(rb"[0-9A-Fa-f]{2}", h):
                return "deny"
            d = int(h, 16)
            if d in (ord("/"), ord("\\"), ord("."), ord("%"), ord("?"), ord("#")) or d < 0x20 or d == 0x7f:
                return "deny"
            out.append(d)
            i += 3
            continue
        out.append(c)
        i += 1
    segs = out.split(b"/")[1:]
    res = []
    for s in segs:
        if b";" in s:
            return "deny"
        if s in (b".", b".."):
            return "deny"
        if s == b"":
            continue
        res.append(s)
    p = b"/" + b"/".join(res)
    def under(pre):
        return p == pre or p.startswith(pre + b"/")
    if under(b"/public"):
        return "public"
    if under(b"/admin"):
        return "admin"
    # /office admits its network's role without a login and any logged-in user (roles add access,
    # they restrict no one); the suite's clients are not on the office network.
    if under(b"/app") or under(b"/ws") or under(b"/office"):
        return "app"
    return "deny"

SOURCES = ["/public", "/public/x", "/app", "/app/x/y", "/ws", "/office"]
TRAVERSALS = [
    "/../", "/./../", "/.././", "/..//", "//../", "/%2e%2e/", "/%2E%2E/", "/.%2e/", "/%2e./", "/..%2f", "/..%2F",
    "/%2e%2e%2f", "/..%5c", "/..%5C", "/..\\", "\\..\\", "/..;/", "/.;/", "/..;x=1/", "/%252e%252e/", "/..%252f",
    "/%u002e%u002e/", "/%c0%ae%c0%ae/", "/%e0%80%ae%e0%80%ae/", "/..%00/", "/..%01/", "/..%09/", "/..%0d%0a/", "/.../",
    "/...%2f", "/..%20/", "/..{SP}/", "/..{TAB}/", "/%2e%2e%5c", "/.%2E/", "/%2e/", "/%2e%2e", "/.%00./", "/..%c0%af",
    "/..%c1%9c", "/%%32%65%%32%65/", "/%25%32%65%25%32%65/",
]
TARGETS = ["admin", "admin/x", "ADMIN", "app"]

FIXED = [
    "/admin", "/admin/", "/admin/x", "/admin/x?y=1", "/admin?x=/public", "/admin?/public", "/admin/?x=../public",
    "/admin?rd=/public/", "/admin#/public", "/admin%23/public", "/admin%3F/public", "/admin%3fx=/public",
    "//admin", "///admin/x", "/./admin", "/admin/./x", "/admin/x/..", "/admin/x/../y", "/admin/x/./../y",
    "/%61dmin", "/admi%6e/x", "/%61%64%6d%69%6e", "/%41dmin", "/administrator", "/admin-panel", "/adminx/y",
    "/admin.", "/admin./x", "/admin..", "/admin%2e", "/admin%2E/x", "/admin%20", "/admin%20/x", "/admin{SP}", "/admin%09",
    "/admin%00", "/admin%00.public", "/admin%00/../public", "/public%00/../admin", "/admin;", "/admin;x", "/admin;/x",
    "/admin;jsessionid=1/x", "/admin%3b/x", "/ADMIN", "/Admin", "/aDmIn/x", "/ADMIN/", "/%41DMIN", "/admin\\",
    "/admin\\x", "\\admin", "/\\admin", "/admin%5c", "/admin%5Cx", "/admin%2F", "/admin%2f", "/admin%2fx", "/%2fadmin",
    "/%2Fadmin", "/%2f%2fadmin", "/admin%252f", "/%2561dmin", "/%25%36%31dmin", "/admin%", "/admin%2", "/admin%zz",
    "/admin%%", "/admin%%2f", "/%admin", "/admin/%", "admin", "*", "/*", "/admin*", "/admin/*", "/public*", "/public?",
    "/public", "/public/", "/public/x", "/public/x/y?z=1", "/public?x=/admin", "/public/?/admin", "/public/x#/admin",
    "/public#/../admin", "/public%23/../admin", "/public/x%3F/../../admin", "/public/x?/../../admin",
    "/public/x?a=../../admin", "/public/%2e", "/public/.", "/public/..", "/public/../", "/public/../public",
    "/public/../public/x", "/public/./x", "/public//x", "/public///", "/public%2f", "/public%2fx", "/public%2F..%2Fadmin",
    "/public%5c..%5cadmin", "/public\\..\\admin", "/public\\../admin", "/public/..\\admin", "/public/%2e%2e/admin",
    "/public/%252e%252e/admin", "/public/%c0%ae%c0%ae/admin", "/public/..;/admin", "/public;/../admin",
    "/public;x=/../admin", "/publicx", "/publicity", "/public.html", "/PUBLIC", "/Public/x", "/public%20/x",
    "/public{TAB}/x", "/public%09/x", "/public%00/x", "/%70ublic", "/%70ublic/x", "/pub%6cic/../admin",
    "/app", "/app/", "/app/x", "/app/x?y=/admin", "/app/../admin", "/app/..%2fadmin", "/app%2f..%2fadmin",
    "/app/..;/admin", "/app;/../admin", "/app/.;/admin", "/app/%2e%2e/admin", "/app/x/../../admin",
    "/app/x/../../../admin", "/app/x/%2e%2e/%2e%2e/admin", "/ws/", "/ws/x", "/ws/../admin", "/ws%2f..%2fadmin",
    "/office", "/office/x", "/office/../admin", "/", "//", "/.", "/..", "/../", "/../admin", "/../../admin",
    "/%2e%2e/admin", "/%2e/admin", "/./", "/x/../", "/x/..", "/nothing", "/nothing/../admin", "/authd/../admin",
    "/authd/..%2fadmin", "/_authd/verify", "/_authd/verify/../../admin", "/_authd/../admin", "/%5fauthd/verify",
    "/healthz", "/metrics", "/readyz", "/verify", "/robots.txt", "/favicon.ico", "/.well-known/security.txt",
    "/health", "/_stcore/health", "/status", "/ping", "/server-status",
]

def main():
    out = os.path.join(os.path.dirname(__file__), "..", "testdata", "paths.txt")
    seen, lines = set(), []
    def add(p):
        if p in seen:
            return
        seen.add(p)
        # HTTP parsers (nginx's too) end the request target at the first space; a trailing one is
        # just a separator.
        real = p.replace("{SP}", " ").replace("{TAB}", "\t").rstrip(" ")
        lines.append(model(real) + "\t" + p)
    for p in FIXED:
        add(p)
    for s, tr, tg in itertools.product(SOURCES, TRAVERSALS, TARGETS):
        add(s + tr + tg)
    with open(out, "w", encoding="utf-8") as f:
        f.write("# Path tricks: <expectation><TAB><request target>, sent byte for byte (tokens as in corpus_test.go).\n")
        f.write("# public: everyone reaches the app; admin: login / 403 for ada / root reaches the app;\n")
        f.write("# app: login / ada and root reach the app; deny: nobody reaches the app.\n")
        f.write("# Generated by gen/paths.py from a model of the rules; add hand-written cases at the end.\n")
        for l in lines:
            f.write(l + "\n")
    print(len(lines), "paths")

main()
