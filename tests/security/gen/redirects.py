#!/usr/bin/env python3
"""Writes testdata/redirects.txt: open-redirect payloads with the outcome each must have.

Run once to (re)generate; the output is committed and may be edited by hand (hand-added lines go
below the generated block). Expectations: default (the default landing path "/"), keep (returned
unchanged), safe (anything on this site or an allowed origin).
"""
import itertools, os

HOSTS = [
    "evil.com", "evil.com:443", "evil.com:{PORT}", "allowed.example.com.evil.com", "allowedXexample.com",
    "localhost.evil.com", "localhost:{PORT}.evil.com", "evil.com#.localhost", "127.0.0.1:{PORT}",
    "0x7f000001", "2130706433", "[::1]", "[::ffff:127.0.0.1]", "xn--e1awd7f.com", "\u0435vil.com",
    "allowed.example.com\u3002evil.com", "\uff45\uff56\uff49\uff4c.com", "evil.com%00", "evil%2ecom",
    "evil.com%23.localhost", "evil.com?.localhost", "evil.com\\.localhost",
]
# Every host goes through the commonest forms; the rest use a spread of them (login POSTs cost a hash).
COMMON = ["//{h}", "/\\{h}", "https://{h}", "https:{h}", "/{TAB}/{h}", "\\/{h}", "https://localhost:{PORT}@{h}"]

# Templates whose result must be the default landing path, whatever the host.
DEFAULT = [
    "//{h}", "///{h}", "////{h}", "//{h}/", "//{h}/path", "//{h}//", "/\\{h}", "\\/{h}", "\\\\{h}", "\\{h}",
    "/{TAB}/{h}", "/{LF}/{h}", "/{CR}/{h}", "/{CR}{LF}/{h}", "/{SP}/{h}", "/{NUL}/{h}", "/{VT}/{h}", "/{FF}/{h}",
    "/{DEL}/{h}", "{TAB}//{h}", "{SP}//{h}", "{LF}//{h}", "//{TAB}{h}", "///\\{h}", "/\\/{h}", "\\//{h}",
    "https://{h}", "http://{h}", "https:{h}", "https:/{h}", "https:\\\\{h}", "https:/\\{h}", "https:\\/{h}",
    "https:///{h}", "https:////{h}", "HTTPS://{h}", "hTtPs://{h}", "{SP}https://{h}", "{TAB}https://{h}",
    "https://{h}/", "https://{h}/authd/login", "https://{h}?x=1", "https://{h}#x", "ht{TAB}tps://{h}",
    "https{LF}://{h}", "https:{TAB}//{h}", "ftp://{h}", "ws://{h}", "wss://{h}", "file://{h}", "//{h}%2F..",
    "https://localhost:{PORT}@{h}", "https://localhost@{h}", "https://allowed.example.com@{h}",
    "https://user:pass@{h}", "https://{h}\\@localhost:{PORT}", "https://{h}%2F@localhost:{PORT}",
    "https://{h}%40localhost:{PORT}", "%2F%2F{h}", "%2f%2f{h}", "%5C%5C{h}", "%2F%5C{h}", "%252F%252F{h}",
    "\u2215\u2215{h}", "\uff0f\uff0f{h}", "\u2044\u2044{h}", "/\u2215{h}", "/\uff0f{h}", "%E2%88%95%E2%88%95{h}",
    "\u3000//{h}", "//{h}{NUL}", "javascript://{h}/%0Aalert(1)", "/{x0d}{x0a}Location:{SP}https://{h}",
    "https://localhost:{PORT}{TAB}@{h}", "//localhost:{PORT}@{h}", "//{h}\\@localhost:{PORT}",
]

# Templates that stay on this site: a path that merely mentions the host. authd may return them
# unchanged or fall back to the default; either way the browser stays here.
SAFE = [
    "/%2F{h}", "/%2F%2F{h}", "/%5C{h}", "/%5C%5C{h}", "/%09/{h}", "/%0A/{h}", "/%0D%0A/{h}", "/.//{h}",
    "/./{h}", "/../{h}", "/..//{h}", "/%2e%2e/{h}", "/{h}", "/app?next=//{h}", "/app#//{h}", "/app?//{h}",
    "/;//{h}", "/%20//{h}",
]

# Fixed payloads.
FIXED_DEFAULT = [
    "javascript:alert(1)", "JavaScript:alert(1)", "javascript:alert(document.domain)//", "jav{TAB}ascript:alert(1)",
    "java{LF}script:alert(1)", "{SP}javascript:alert(1)", "javascript://%0aalert(1)", "javascript:/\\/alert(1)",
    "vbscript:msgbox(1)", "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "blob:https://evil.com/x", "about:blank",
    "mailto:a@evil.com", "tel:123", "https:", "https://", "//", "///", "/\\", "\\", "{SP}", "{TAB}", "{LF}", "{NUL}",
    "/authd/login", "/authd/login?rd=//evil.com", "/authd/logout", "/authd/loginx", "https://localhost:{PORT}/authd/login",
    "https://localhost:{PORT}/authd/logout", "https://localhost", "https://localhost:1", "https://localhost:{PORT}0",
    "http://localhost:{PORT}/", "https://127.0.0.1:{PORT}/", "https://[::1]:{PORT}/", "https://localhost.:{PORT}/",
    "https://localhost:{PORT}./", "https://localhost:0{PORT}/", "https://allowed.example.com:444/",
    "http://allowed.example.com/", "https://allowed.example.com:80/", "https://sub.allowed.example.com/",
    "https://allowed.example.co/", "https://allowed.example.com.evil.com/", "https://evil.com/allowed.example.com",
    "https://evil.com?allowed.example.com", "https://allowed.example.com@evil.com/", "https://allowed.example.com:@evil.com/",
    "https://allowed.example.com%2F@evil.com/", "https://allowed.example.com\\@evil.com/", "//allowed.example.com/",
    "https:allowed.example.com/", "https:/allowed.example.com/", "allowed.example.com", "evil.com", "evil.com/x",
    "www.evil.com", "./evil.com", "../evil.com", ".//evil.com", "..//evil.com", "x:/evil.com", "x://evil.com",
    "{R:3000:/a}", "/{R:2100:a}", "https://allowed.example.com/{R:2100:a}", "\u00e9", "/\u00e9", "/caf\u00e9",
    "https://xn--allowed-5ya.example.com/", "https://allowed.example.com\u3002/", "https://allowed\u3002example\u3002com/",
    "https://\uff41llowed.example.com/", "https://allowed.example.com%E3%80%82evil.com/", "//%E3%80%82evil.com",
    "https://localhost:{PORT}\\.evil.com/", "https://localhost%3A{PORT}@evil.com/", "/<img{SP}src=x{SP}onerror=alert(1)>",
]

FIXED_SAFE = [
    "https://allowed.example.com:443/", "https://ALLOWED.EXAMPLE.COM/x", "https://LOCALHOST:{PORT}/x",
    "HTTPS://localhost:{PORT}/x", "/app/'onmouseover='alert(1)", "/app/%22%3E%3Cscript%3Ealert(1)%3C/script%3E",
    "/app?rd=https://evil.com", "/app?x=%0d%0aSet-Cookie:x=1", "/%2e%2e%2f%2e%2e%2fevil.com",
    "/\"><script>alert(1)</script>", "https://localhost:{PORT}/\"><script>alert(1)</script>",
    "/app/'><svg/onload=alert(1)>", "/app?x=</script><script>alert(1)</script>",
]

KEEP = [
    "/", "/app", "/app/", "/app/x?y=1", "/app/x?y=1&z=2#frag", "/app/a%20b", "/public/page", "/admin/",
    "/app/x?next=/app/y", "/authd/whoami", "/app/~user", "/app/a;b=c", "/app/%C3%A9", "/a/b/c/d/e/f",
    "https://localhost:{PORT}/app", "https://localhost:{PORT}/", "https://localhost:{PORT}", "https://allowed.example.com/",
    "https://allowed.example.com/path?q=1", "https://allowed.example.com", "https://allowed.example.com/a#b",
    "/app?q=a+b", "/app?q=%2F%2Fevil.com",
]

def main():
    out = os.path.join(os.path.dirname(__file__), "..", "testdata", "redirects.txt")
    seen = set()
    lines = []
    def add(exp, p):
        if p in seen:
            return
        seen.add(p)
        lines.append(exp + "\t" + p)
    for t, h in itertools.product(DEFAULT, HOSTS[:4] + HOSTS[9:10] + HOSTS[14:17]):
        add("default", t.replace("{h}", h))
    for t, h in itertools.product(COMMON, HOSTS):
        add("default", t.replace("{h}", h))
    for t, h in itertools.product(SAFE, HOSTS[:6]):
        add("safe", t.replace("{h}", h))
    for p in FIXED_DEFAULT:
        add("default", p)
    for p in FIXED_SAFE:
        add("safe", p)
    for p in KEEP:
        add("keep", p)
    with open(out, "w", encoding="utf-8") as f:
        f.write("# Open-redirect payloads: <expectation><TAB><payload>, tokens as in corpus_test.go.\n")
        f.write("# default: the default landing path (\"/\"); keep: returned unchanged; safe: on this site or an\n")
        f.write("# allowed origin (https://allowed.example.com), never elsewhere.\n")
        f.write("# Generated by gen/redirects.py; add hand-written cases at the end.\n")
        for l in lines:
            f.write(l + "\n")
    print(len(lines), "payloads")

main()
