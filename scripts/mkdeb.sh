#!/bin/sh
# mkdeb.sh BUILD_DIR: builds BUILD_DIR/rtm_<version>_<arch>.deb from an
# already built tree (make deb runs `make all` first). No debhelper: the
# package is laid out here by hand, from packaging/ (unit, default settings,
# maintainer scripts) and the build; man pages come from --help (help2man),
# dependencies from the binaries (dpkg-shlibdeps). Nothing is installed on
# this machine. Prints the .deb's path.
set -eu
B=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
B=$(cd "$B" && pwd) # absolute: the man-page step links to the binaries from elsewhere
VERSION=$("$B/rtmd" --version | awk '{print $2}')
ARCH=$(dpkg --print-architecture)
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
work="$B/deb"
root="$work/root"
rm -rf "$work"
mkdir -p "$root/DEBIAN"

d() { install -d -m 0755 "$root/$1"; }
d usr/sbin; d usr/bin; d "usr/lib/$MA/pkgconfig"; d usr/include; d usr/share/rtm
d usr/share/man/man1; d usr/share/man/man8; d usr/share/doc/rtm; d lib/systemd/system; d etc/rtm

install -m 0755 "$B/rtmd" "$root/usr/sbin/rtmd"
install -m 0755 "$B/rtm" "$root/usr/bin/rtm"
install -m 0644 "$B/librtm.so.1" "$root/usr/lib/$MA/librtm.so.1"
ln -s librtm.so.1 "$root/usr/lib/$MA/librtm.so"
install -m 0644 "$B/librtm.a" "$root/usr/lib/$MA/librtm.a"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$root/usr/sbin/rtmd" "$root/usr/bin/rtm" "$root/usr/lib/$MA/librtm.so.1"
strip --strip-debug "$root/usr/lib/$MA/librtm.a"
install -m 0644 sdk-c/include/rtm.h "$root/usr/include/rtm.h"
# librtm's own version (rtm.h's RTM_VERSION_STRING, as the Makefile's rtm.pc)
LIBV=$(sed -n 's/^#define RTM_VERSION_STRING "\(.*\)"/\1/p' sdk-c/include/rtm.h)
sed -e 's|@PREFIX@|/usr|g' -e "s|@VERSION@|$LIBV|g" -e "s|^libdir=.*|libdir=\${prefix}/lib/$MA|" sdk-c/rtm.pc.in > "$root/usr/lib/$MA/pkgconfig/rtm.pc"
chmod 0644 "$root/usr/lib/$MA/pkgconfig/rtm.pc"
cp -R web "$root/usr/share/rtm/web"
find "$root/usr/share/rtm/web" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +
install -m 0644 packaging/rtmd.service "$root/lib/systemd/system/rtmd.service"
install -m 0644 packaging/rtm.json "$root/etc/rtm/rtm.json"

# man pages from --help, with the programs named as installed
bin="$work/bin"
mkdir -p "$bin"
ln -s "$B/rtmd" "$bin/rtmd"
ln -s "$B/rtm" "$bin/rtm"
PATH="$bin:$PATH" help2man -N -s 8 -n "rtm broker and mint API daemon" \
    --source "rtm $VERSION" --manual "rtm" rtmd > "$work/rtmd.8"
PATH="$bin:$PATH" help2man -N -s 1 -n "rtm command-line tool: keys, tokens, publish, subscribe, peers" \
    --source "rtm $VERSION" --manual "rtm" --version-string "$VERSION" rtm > "$work/rtm.1"
gzip -9n -c "$work/rtmd.8" > "$root/usr/share/man/man8/rtmd.8.gz"
gzip -9n -c "$work/rtm.1" > "$root/usr/share/man/man1/rtm.1.gz"
chmod 0644 "$root/usr/share/man/man8/rtmd.8.gz" "$root/usr/share/man/man1/rtm.1.gz"

install -m 0644 packaging/debian/copyright "$root/usr/share/doc/rtm/copyright"
install -m 0644 README.md "$root/usr/share/doc/rtm/README.md"
for f in api.md metrics.md grafana-rtm.json; do
    install -m 0644 "docs/$f" "$root/usr/share/doc/rtm/$f"
done
date=$(date -R -u -d "@${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")
# a native package (no Debian revision): changelog.gz, not changelog.Debian.gz
sed -e "s|@VERSION@|$VERSION|" -e "s|@DATE@|$date|" packaging/debian/changelog.in | gzip -9n > "$root/usr/share/doc/rtm/changelog.gz"
chmod 0644 "$root/usr/share/doc/rtm/changelog.gz"

# Depends: what the binaries link, as dpkg-shlibdeps finds it (it wants a debian/control)
mkdir -p "$work/src/debian"
printf 'Source: rtm\n\nPackage: rtm\nArchitecture: any\n' > "$work/src/debian/control"
deps=$(cd "$work/src" && dpkg-shlibdeps -O -l"$root/usr/lib/$MA" \
    "$root/usr/sbin/rtmd" "$root/usr/bin/rtm" "$root/usr/lib/$MA/librtm.so.1" 2>/dev/null |
    sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { echo "mkdeb: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
# lws loads its libev plugin at run time (dlopen): shlibdeps cannot see it
deps="$deps, libwebsockets-evlib-ev"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$VERSION|" -e "s|@ARCH@|$ARCH|" -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$deps|" \
    packaging/debian/control.in > "$root/DEBIAN/control"
install -m 0644 packaging/debian/conffiles "$root/DEBIAN/conffiles"
# librtm.so.1 is a public shared library: ldconfig after install, and a shlibs
# entry so packages built against it depend on this one
printf 'activate-noawait ldconfig\n' > "$root/DEBIAN/triggers"
printf 'librtm 1 rtm (>= %s)\n' "$VERSION" > "$root/DEBIAN/shlibs"
chmod 0644 "$root/DEBIAN/triggers" "$root/DEBIAN/shlibs"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$root/DEBIAN/"
(cd "$root" && find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums"

deb="$B/rtm_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
