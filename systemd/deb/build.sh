#!/usr/bin/env bash
# Builds the Debian package authd_<version>_<arch>.deb from this checkout, with dpkg-deb (no
# debian/ source tree, no debhelper): the binary, the systemd unit, the default config and the
# nginx snippets as conffiles, the "sign-in service unavailable" page, docs and examples, and the
# maintainer scripts beside this file.
#
#   bash systemd/deb/build.sh [-o OUTDIR]        (default OUTDIR: bin/)
#
# Prints the path of the package it wrote. Needs Go (tests/lib/deps.sh installs one), git and
# dpkg-deb; not root. Settings:
#   AUTHD_DEB_VERSION     the upstream version (default: from git, see below)
#   AUTHD_DEB_ARCH        the Debian architecture (default: dpkg --print-architecture)
#   AUTHD_DEB_MAINTAINER  the Maintainer field
#
# Version: a tag vX.Y.Z on HEAD gives X.Y.Z (vX.Y.Z-rc1: X.Y.Z~rc1); commits after the tag give
# X.Y.Z+git<date>.<n>.<hash>;
# no tag gives 0.0~git<date>.<hash> (sorts before any release). <date> is the commit's UTC time,
# so a rebuild of one commit gives the same version; a tree with uncommitted changes adds
# "+dirty". The Debian revision is always -1. The binary carries the same version and the full
# commit (authd version): -X main.version, -X main.commit.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
HERE="$ROOT/systemd/deb"
OUT="$ROOT/bin"
while getopts "o:" opt; do
    case $opt in
    o) OUT=$OPTARG ;;
    *) echo "usage: $0 [-o OUTDIR]" >&2; exit 2 ;;
    esac
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

source "$ROOT/tests/lib/deps.sh"
need_go

git=(git -C "$ROOT")
commit="$("${git[@]}" rev-parse HEAD)"
dirty=""
if [[ -n $("${git[@]}" status --porcelain --untracked-files=no) ]]; then dirty="+dirty"; fi
when="$(TZ=UTC "${git[@]}" log -1 --format=%cd --date=format-local:%Y%m%d.%H%M%S)"
short="$("${git[@]}" rev-parse --short=12 HEAD)"
if [[ -n ${AUTHD_DEB_VERSION:-} ]]; then
    upstream=$AUTHD_DEB_VERSION
elif desc="$("${git[@]}" describe --tags --match 'v[0-9]*' --long 2>/dev/null)"; then
    # v1.2.3-5-gabcdef → 1.2.3 and 5 commits since.
    tag=${desc%-*-g*}
    since=${desc%-g*}
    since=${since##*-}
    upstream=${tag#v}
    upstream=${upstream//-/\~} # v1.2.3-rc1 → 1.2.3~rc1, which sorts before 1.2.3
    if [[ $since != 0 ]]; then upstream="$upstream+git$when.$since.$short"; fi
else
    upstream="0.0~git$when.$short"
fi
upstream="$upstream$dirty"
version="$upstream-1"
if ! [[ $upstream =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
    echo "error: $upstream is not a Debian upstream version" >&2
    exit 1
fi

arch="${AUTHD_DEB_ARCH:-$(dpkg --print-architecture)}"
case $arch in
amd64) goarch=amd64 ;;
arm64) goarch=arm64 ;;
armhf) goarch=arm; export GOARM=7 ;;
i386) goarch=386 ;;
ppc64el) goarch=ppc64le ;;
riscv64) goarch=riscv64 ;;
s390x) goarch=s390x ;;
*) echo "error: no Go architecture for Debian's $arch" >&2; exit 1 ;;
esac

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
pkg="$stage/authd"
doc="$pkg/usr/share/doc/authd"
ex="$doc/examples"
install -d "$pkg/DEBIAN" "$pkg/usr/bin" "$pkg/lib/systemd/system" "$pkg/etc/authd" \
    "$pkg/etc/nginx/authd" "$pkg/usr/share/authd/html" "$ex/nginx" "$ex/systemd" "$ex/supervisor" "$ex/conf"

echo "==> building authd $upstream for $arch" >&2
# Static (no cgo): the package depends on no C library version. Reproducible: no paths, no
# VCS stamp (the version and commit are set explicitly).
(cd "$ROOT" && CGO_ENABLED=0 GOOS=linux GOARCH=$goarch go build -trimpath -buildvcs=false \
    -ldflags "-s -w -X main.version=$upstream -X main.commit=$commit${dirty:+-dirty}" \
    -o "$pkg/usr/bin/authd" ./authd)

# systemd: authd's own units (authd*.service, authd*.socket) are installed, with the package's
# binary path; drop-ins and the Streamlit template (which needs a user and a venv the package
# does not create) are examples.
for f in "$ROOT"/systemd/*; do
    [[ -f $f ]] || continue # deb/, this packaging
    b="$(basename "$f")"
    case $b in
    authd*.service | authd*.socket)
        # The checkout's header says how to install by hand; the package did that.
        {
            echo "# $b from the authd Debian package. Edit /etc/authd/authd.toml, then"
            echo "#   systemctl enable --now $b"
            echo "# Local changes: systemctl edit $b (a drop-in), never this file."
            echo "# Examples: /usr/share/doc/authd/examples/systemd/."
            sed -e '1,/^[^#]/{/^#/d}' -e 's#/usr/local/bin/authd#/usr/bin/authd#g' \
                -e '/^Description=/a Documentation=man:authd(1)' "$f"
        } >"$pkg/lib/systemd/system/$b" ;;
    *) sed 's#/usr/local/bin/authd#/usr/bin/authd#g' "$f" >"$ex/systemd/$b" ;;
    esac
done

# Conffiles: the annotated default config and the nginx snippets (nginx reads them as
# include authd/…, relative to /etc/nginx). The example sites are examples.
install -m 0640 "$ROOT/conf/authd.toml" "$pkg/etc/authd/authd.toml"
for f in "$ROOT"/nginx/*.conf; do
    case "$(basename "$f")" in
    example-site.conf | lb-example.conf) install -m 0644 "$f" "$ex/nginx/" ;;
    *) install -m 0644 "$f" "$pkg/etc/nginx/authd/" ;;
    esac
done
install -m 0644 "$ROOT"/nginx/html/* "$pkg/usr/share/authd/html/"
install -D -m 0644 "$HERE/lintian-overrides" "$pkg/usr/share/lintian/overrides/authd"

for f in "$ROOT"/supervisor/*.conf; do
    sed 's#/usr/local/bin/authd#/usr/bin/authd#g' "$f" >"$ex/supervisor/$(basename "$f")"
done
install -m 0644 "$ROOT"/conf/redis-*.toml "$ROOT/conf/users.example.toml" "$ex/conf/"
install -m 0644 "$ROOT/conf/clients/authd_sign.py" "$ex/"
gzip -9n <"$ROOT/README.md" >"$doc/README.md.gz"

# The manual page: the command list is `authd help` of the binary just built, so it never drifts
# from the commands. A binary for another architecture cannot run here: no manual page then.
if help="$("$pkg/usr/bin/authd" help 2>&1)"; then
    install -d "$pkg/usr/share/man/man1"
    {
        echo ".TH AUTHD 1 \"$(TZ=UTC "${git[@]}" log -1 --format=%cd --date=format-local:%Y-%m-%d)\" \"authd $upstream\" \"authd\""
        echo ".SH NAME"
        echo "authd \\- login and auth_request backend for nginx"
        echo ".SH SYNOPSIS"
        echo ".B authd"
        echo ".I command"
        echo "[flags]"
        echo ".SH DESCRIPTION"
        echo "authd puts a login in front of web apps behind nginx: nginx asks it, through"
        echo ".BR auth_request ,"
        echo "whether each request may pass and as whom."
        echo ".B authd serve"
        echo "runs the daemon (the systemd unit authd.service runs it as the authd user);"
        echo "the other commands manage its configuration, users, sessions and machine credentials."
        echo ".SH COMMANDS"
        echo ".nf"
        printf '%s\n' "$help" | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
        echo ".fi"
        echo ".SH FILES"
        echo ".TP"
        echo ".I /etc/authd/authd.toml"
        echo "the configuration; every key with its default and what it does"
        echo ".TP"
        echo ".I /etc/authd/users.toml"
        echo "users and password hashes"
        echo ".TP"
        echo ".I /var/lib/authd"
        echo "sessions and the CSRF secret"
        echo ".TP"
        echo ".I /etc/nginx/authd/"
        echo "the nginx snippets"
        echo ".TP"
        echo ".I /usr/share/authd/html/"
        echo "the page nginx shows while authd cannot answer"
        echo ".SH SEE ALSO"
        echo ".BR nginx (8),"
        echo ".I /usr/share/doc/authd/README.md.gz"
    } | gzip -9n >"$pkg/usr/share/man/man1/authd.1.gz"
else
    echo "warning: cannot run the $arch binary here: no manual page" >&2
fi
{
    echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
    echo "Upstream-Name: authd"
    echo
    echo "Files: *"
    echo "License: see below"
    echo " The LICENSE file of the source tree, verbatim:"
    echo " ."
    sed -e 's/^$/./' -e 's/^/ /' "$ROOT/LICENSE"
} >"$doc/copyright"
date_rfc="$(TZ=UTC "${git[@]}" log -1 --format=%cd --date=format-local:'%a, %d %b %Y %H:%M:%S +0000')"
maint="${AUTHD_DEB_MAINTAINER:-authd maintainers <authd@example.com>}"
{
    echo "authd ($version) unstable; urgency=medium"
    echo
    echo "  * Built from commit $commit$dirty."
    echo
    echo " -- $maint  $date_rfc"
} | gzip -9n >"$doc/changelog.Debian.gz"

for s in postinst prerm postrm; do
    install -m 0755 "$HERE/$s" "$pkg/DEBIAN/$s"
done
(cd "$pkg" && find etc -type f | sort | sed 's#^#/#') >"$pkg/DEBIAN/conffiles"
size="$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" -e "s/@MAINTAINER@/$maint/" \
    "$HERE/control" >"$pkg/DEBIAN/control"
(cd "$pkg" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"

# Every file root-owned, directories 0755, timestamps from the commit (reproducible).
find "$pkg" -type d -exec chmod 0755 {} +
export SOURCE_DATE_EPOCH="$("${git[@]}" log -1 --format=%ct)"
find "$pkg" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
deb="$OUT/authd_${version}_$arch.deb"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$deb" >/dev/null
echo "$deb"
