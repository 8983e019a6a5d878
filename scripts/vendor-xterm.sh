#!/usr/bin/env bash
# Refreshes ui/vendor/ from the npm registry: xterm.js and two addons at
# pinned versions, checked against pinned tarball hashes (README "Web
# console").  Run by hand when bumping; the build only embeds ui/vendor/.
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=("@xterm/xterm@5.5.0 bd954fa721872170188cc5d7e83e88db3c83c9a18a4e8d24c2783d26491f59d2"
      "@xterm/addon-canvas@0.7.0 f8004a9c444289c686ac9b58df98505f3e027fcfea411b6845f9279cc281a774"
      "@xterm/addon-fit@0.10.0 917ac44972453d5eed52edc1e50260c76398ce48cf2290c2e60671102bba0b33")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for p in "${PKGS[@]}"; do
    set -- $p
    (cd "$tmp" && npm pack --silent -- "$1" >/dev/null)
done
for p in "${PKGS[@]}"; do
    set -- $p
    name=${1%@*}; ver=${1##*@}; f=${name#@}; tgz="$tmp/${f/\//-}-$ver.tgz"
    echo "$2  $tgz" | sha256sum -c --quiet -
    mkdir -p "$tmp/${name##*/}" && tar -xzf "$tgz" -C "$tmp/${name##*/}"
done
mkdir -p ui/vendor
cp "$tmp/xterm/package/lib/xterm.js" "$tmp/xterm/package/css/xterm.css" ui/vendor/
cp "$tmp/xterm/package/LICENSE" ui/vendor/LICENSE-xterm.txt
cp "$tmp/addon-canvas/package/lib/addon-canvas.js" ui/vendor/
cp "$tmp/addon-canvas/package/LICENSE" ui/vendor/LICENSE-addon-canvas.txt
cp "$tmp/addon-fit/package/lib/addon-fit.js" ui/vendor/
cp "$tmp/addon-fit/package/LICENSE" ui/vendor/LICENSE-addon-fit.txt
echo "ui/vendor/ refreshed"
