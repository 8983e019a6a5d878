# shellcheck shell=bash
# Sourced by scripts that run mmdebstrap: the Debian archive this machine
# reaches, from its apt sources (one-line and deb822 formats), as
# tests/images/build.sh finds it.
#   apt_uri_for_suite SUITE   prints the URI of the first source with SUITE
#   debian_sources SUITE...   prints one "deb URI SUITE main" line per suite
#                             (SUITE-security from its own archive, the
#                             others from bookworm's when not listed)
apt_uri_for_suite() {
    local want=$1 f
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v s="$want" '$1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == s) { print $i; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v s="$want" '
            function flush() { if (ok && uri != "") { print uri; exit } ok = 0; uri = "" }
            /^[ \t]*$/ { flush(); next }
            /^URIs:/ { uri = $2 }
            /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
            END { flush() }' "$f"
    done
}

debian_sources() {
    local s uri
    for s in "$@"; do
        uri=$(apt_uri_for_suite "$s" | head -n1)
        case "$s" in
        bookworm) uri=${BOXER_DEBIAN_MIRROR:-${uri:-http://deb.debian.org/debian}} ;;
        *-security) uri=${BOXER_DEBIAN_SECURITY:-$uri} ;;
        # updates and backports live in the main archive
        *) uri=${uri:-${BOXER_DEBIAN_MIRROR:-$(apt_uri_for_suite bookworm | head -n1)}} ;;
        esac
        [ -n "$uri" ] && echo "deb $uri $s main"
    done
    return 0
}

# mmdebstrap options that let the chroot take .debs from this machine's apt
# cache and give back the ones it downloaded: hard links both ways (the
# cache and the work directory share a file system under /var), so nothing
# outside the chroot is deleted whatever happens to it, and nothing is
# copied.  --skip=essential/unlink keeps mmdebstrap from removing the
# linked files it did not download.
host_apt_cache_opts() {
    # shellcheck disable=SC2016 # "$1" is the chroot, expanded by mmdebstrap's hooks
    printf '%s\n' --skip=essential/unlink \
        '--setup-hook=mkdir -p "$1"/var/cache/apt/archives && { cp -al /var/cache/apt/archives/*.deb "$1"/var/cache/apt/archives/ 2>/dev/null || true; }' \
        '--customize-hook=for f in "$1"/var/cache/apt/archives/*.deb; do case "${f##*/}" in boxer_*) ;; *) [ -e "/var/cache/apt/archives/${f##*/}" ] || cp -l "$f" /var/cache/apt/archives/ 2>/dev/null || true ;; esac; done'
}
