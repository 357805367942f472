#!/usr/bin/env bash
# Install the Debian packages the test suite needs (idempotent).
#
# Checks every package with `dpkg -s` first: when all are present this exits
# at once without touching the network. Otherwise it runs `apt-get update`
# once and installs only the missing ones (no recommends). Uses sudo when not
# run as root.
#
# Usage: scripts/install-test-deps.sh
set -euo pipefail

PACKAGES=(
  # --- RTSP test camera (tests/support/rtsp_server.py, run with /usr/bin/python3) ---
  python3                       # the system python the RTSP server script runs with
  python3-gi                    # PyGObject: `import gi`
  gir1.2-gstreamer-1.0          # gi.repository.Gst
  gir1.2-gst-rtsp-server-1.0    # gi.repository.GstRtspServer (+ libgstrtspserver-1.0-0)
  gstreamer1.0-plugins-base     # videotestsrc, videoconvert
  gstreamer1.0-plugins-good     # rtph264pay, rtp/udp elements used by the RTSP server
  gstreamer1.0-plugins-ugly     # x264enc (Debian ships it here; there is no gstreamer1.0-x264)
  gstreamer1.0-plugins-bad      # required by libgstrtspserver-1.0-0 anyway; h264parse
  gstreamer1.0-x                # clockoverlay (Pango); optional, the server runs without it

  # --- more test packages: append below this line (one per line, with a comment) ---
  postgresql                    # PostgreSQL server binaries (initdb, pg_ctl) for tests/support/postgres.py;
                                # tests run a throwaway cluster: the system service is not needed
  chromium                      # headless browser of tests/browser, driven by Playwright (pip package
                                # playwright); Playwright's own browser download is never used
  systemd                       # systemd-analyze verify of the units scripts/install-hub renders
                                # (tests/e2e/test_install.py); nothing is started
  mpv                           # a real player opens recordings' HLS playlists with no special
                                # flags, by header and by stream link (tests/e2e/test_play_everywhere.py)
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  # "install ok installed" only; half-installed / removed-with-config count as missing.
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$pkg")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-deps: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "install-test-deps: need root or sudo to install: ${missing[*]}" >&2
    exit 1
  fi
fi

echo "install-test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-test-deps: done"
