#!/usr/bin/env bash
# Unpack Debian's own ffmpeg (5.1 on Debian 12) into a private folder, without installing it.
#
# A hub configured with ffmpeg = "/usr/bin/ffmpeg" (nvrlib/ffmpeg_bin.py) on Debian 12 runs
# 5.1, whose segment muxer differs from the imageio-ffmpeg wheel's (it counts its cuts from
# PTS 0 in every process). The tests marked both_ffmpegs, and tests/e2e/test_restart_segments.py,
# run the hub on both. Installing it would touch the system for a test, so this fetches the
# .deb files of ffmpeg and of the libraries the machine lacks (`apt-get download`), unpacks
# them with `dpkg -x` and writes a wrapper that points the loader at them. Idempotent: a
# working wrapper is left alone.
#
# Usage: scripts/unpack-debian-ffmpeg.sh [DIR]   (default $NVR_DEBIAN_FFMPEG_DIR or
#        /var/cache/nvr-tests/debian-ffmpeg); the wrapper is DIR/bin/ffmpeg.
set -euo pipefail

DIR="${1:-${NVR_DEBIAN_FFMPEG_DIR:-/var/cache/nvr-tests/debian-ffmpeg}}"
WRAPPER="$DIR/bin/ffmpeg"

if [ -x "$WRAPPER" ] && "$WRAPPER" -hide_banner -version >/dev/null 2>&1; then
  echo "unpack-debian-ffmpeg: $WRAPPER works already"
  exit 0
fi

mkdir -p "$DIR/bin"
if dpkg-query -W -f='${Status}' ffmpeg 2>/dev/null | grep -q '^install ok installed$'; then
  # Debian's ffmpeg is installed already (then every test runs it): point the wrapper at it
  printf '#!/bin/sh\nexec /usr/bin/ffmpeg "$@"\n' >"$WRAPPER"
  chmod +x "$WRAPPER"
  echo "unpack-debian-ffmpeg: $WRAPPER runs the installed /usr/bin/ffmpeg"
  exit 0
fi

packages() {
  # what `apt-get install ffmpeg` would add: ffmpeg and the libraries not installed yet
  apt-get install -s -q --no-install-recommends ffmpeg 2>/dev/null | awk '/^Inst /{print $2}'
}

mkdir -p "$DIR/debs" "$DIR/root" "$DIR/bin"
wanted=$(packages)
if [ -z "$wanted" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  wanted=$(packages)
fi
if [ -z "$wanted" ]; then
  echo "unpack-debian-ffmpeg: apt-get finds no ffmpeg package to download" >&2
  exit 1
fi
# shellcheck disable=SC2086  # one package name per word
(cd "$DIR/debs" && apt-get download -q $wanted >/dev/null)
for deb in "$DIR"/debs/*.deb; do
  dpkg -x "$deb" "$DIR/root"
done

LIB="$DIR/root/usr/lib/x86_64-linux-gnu"
LIBS="$LIB"
for sub in "$LIB"/*/; do
  [ -d "$sub" ] && LIBS="$LIBS:${sub%/}"  # blas/, lapack/: Debian's alternatives folders
done
cat >"$WRAPPER" <<EOF
#!/bin/sh
# Debian's ffmpeg, unpacked by scripts/unpack-debian-ffmpeg.sh (not installed)
LD_LIBRARY_PATH="$LIBS\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$DIR/root/usr/bin/ffmpeg" "\$@"
EOF
chmod +x "$WRAPPER"
"$WRAPPER" -hide_banner -version | head -n 1
echo "unpack-debian-ffmpeg: $WRAPPER ready"
