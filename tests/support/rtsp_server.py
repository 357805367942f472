#!/usr/bin/python3
"""A real RTSP camera for tests: GstRtspServer serving a live H.264 test pattern.

Run it with the SYSTEM python (``/usr/bin/python3``): PyGObject and the GStreamer
typelibs are Debian packages (see ``scripts/install-test-deps.sh``), not in the venv.
Tests use it through ``tests/support/rtsp.py``; by hand::

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 --user admin --password secret
    ffmpeg -rtsp_transport tcp -i rtsp://admin:secret@127.0.0.1:8554/cam -t 3 -c copy out.ts

Once it listens it prints exactly one line ``READY rtsp://HOST:PORT/PATH`` (no
credentials in it) to stdout and flushes. ``--port 0`` picks a free port. SIGTERM or
SIGINT stops it with exit code 0; so does EOF on stdin with ``--watch-stdin`` (the
launcher uses that so a server never outlives a killed test run).
``--user``/``--password`` require RTSP auth (``--auth digest``, the default, or
``basic``); clients put them in the URL: ``rtsp://user:pass@127.0.0.1:PORT/cam``.
The media is shared by all clients and cannot be seeked (late joiners get the live
stream mid-GOP and decode from the next keyframe: one a second by default).
``--check`` only tells whether everything needed is installed (exit 0 and ``OK``,
else exit 1 and the reason).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

REQUIRED_ELEMENTS = ("videotestsrc", "videoconvert", "x264enc", "rtph264pay", "audiotestsrc",
                     "audioconvert", "audioresample", "mulawenc", "alawenc", "rtppcmupay",
                     "rtppcmapay")


def _load_gi():
    """Import Gst, GstRtspServer and GLib; raise ImportError/ValueError with a reason."""
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtsp", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

    return GLib, Gst, GstRtsp, GstRtspServer


def check() -> str | None:
    """Return None when the server can run here, else why not."""
    try:
        _GLib, Gst, _GstRtsp, _GstRtspServer = _load_gi()
    except (ImportError, ValueError) as exc:
        return f"PyGObject / GstRtspServer typelib not usable by {sys.executable}: {exc}"
    Gst.init(None)
    missing = [name for name in REQUIRED_ELEMENTS if Gst.ElementFactory.find(name) is None]
    if missing:
        return f"GStreamer elements missing: {', '.join(missing)}"
    return None


def launch_line(args: argparse.Namespace, Gst) -> str:
    """The media factory's pipeline description (the payloader must be named pay0)."""
    overlay = ""
    if not args.no_overlay and Gst.ElementFactory.find("clockoverlay") is not None:
        # Wall-clock time burnt into the picture (gstreamer1.0-x); optional.
        overlay = 'clockoverlay time-format="%H:%M:%S" ! '
    return (
        f"( videotestsrc is-live=true pattern={args.pattern} "
        f"! video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1 "
        f"! {overlay}videoconvert ! video/x-raw,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={args.gop} "
        f"bitrate={args.bitrate} byte-stream=true "
        f"! video/x-h264,profile=constrained-baseline "
        # x264 repeats SPS/PPS in-band before every IDR (and the SDP carries them), so a
        # client joining the shared stream mid-way decodes from the next keyframe. No
        # config-interval=-1: it sends SPS/PPS as packets of their own, which ffmpeg
        # -c copy then warns about ("Non-monotonic DTS") at every keyframe.
        f"! rtph264pay name=pay0 pt=96 {_sound(args.audio)})"
    )


def _sound(codec: str) -> str:
    """A 440-Hz tone as a second stream, G.711 as most IP cameras send it (payloader pay1)."""
    if codec == "none":
        return ""
    encoder, payloader, pt = {"pcmu": ("mulawenc", "rtppcmupay", 0),
                              "pcma": ("alawenc", "rtppcmapay", 8)}[codec]
    return (f"audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample "
            f"! audio/x-raw,rate=8000,channels=1 ! {encoder} ! {payloader} name=pay1 pt={pt} ")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="TCP port; 0 picks a free one")
    parser.add_argument("--path", default="cam", help="mount point (default: cam)")
    parser.add_argument("--user", help="require this user (RTSP Basic or Digest auth)")
    parser.add_argument("--password", help="password for --user")
    parser.add_argument("--auth", choices=("digest", "basic"), default="digest",
                        help="authentication scheme required with --user (default: digest)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--gop", type=int, default=25, help="x264enc key-int-max (frames)")
    parser.add_argument("--bitrate", type=int, default=800, help="x264enc bitrate, kbit/s")
    parser.add_argument("--pattern", default="ball", help="videotestsrc pattern")
    parser.add_argument("--no-overlay", action="store_true", help="no clockoverlay")
    parser.add_argument("--audio", choices=("none", "pcmu", "pcma"), default="none",
                        help="a tone as G.711 u-law or A-law next to the picture")
    parser.add_argument("--watch-stdin", action="store_true",
                        help="exit when stdin reaches EOF (the parent went away)")
    parser.add_argument("--check", action="store_true",
                        help="only check that the GStreamer pieces are installed")
    args = parser.parse_args(argv)
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    args.path = "/" + args.path.strip("/")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = check()
    if args.check:
        print(problem or "OK", flush=True)
        return 1 if problem else 0
    if problem:
        print(f"rtsp_server: {problem}", file=sys.stderr, flush=True)
        return 2

    GLib, Gst, GstRtsp, GstRtspServer = _load_gi()

    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))

    launch = launch_line(args, Gst)
    try:  # the factory builds the pipeline only on the first DESCRIBE: fail early instead
        Gst.parse_launch_full(launch, None, Gst.ParseFlags.FATAL_ERRORS)
    except GLib.Error as exc:
        print(f"rtsp_server: bad pipeline {launch!r}: {exc.message}", file=sys.stderr,
              flush=True)
        return 2

    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch)
    factory.set_shared(True)
    # Makes the media non-seekable. Otherwise every client's PLAY (ffmpeg sends
    # "Range: npt=0.000-") seeks the shared live pipeline back to frame 0, and the clients
    # already watching get the first seconds replayed with timestamps going backwards.
    factory.set_publish_clock_mode(GstRtspServer.RTSPPublishClockMode.CLOCK_AND_OFFSET)

    if args.user is not None:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "user")
        # One scheme per server: PyGObject cannot pass BASIC|DIGEST (the C type is an
        # enum used as flags), so the 401 challenge offers exactly the one chosen.
        if args.auth == "basic":
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        else:
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        server.set_auth(auth)
        factory.add_role_from_structure(Gst.Structure.new_from_string(
            "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))

    server.get_mount_points().add_factory(args.path, factory)

    loop = GLib.MainLoop()

    def stop(*_args) -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, signum, stop)
    if args.watch_stdin:
        GLib.io_add_watch(sys.stdin.fileno(), GLib.PRIORITY_DEFAULT,
                          GLib.IOCondition.IN | GLib.IOCondition.HUP | GLib.IOCondition.ERR,
                          lambda fd, _cond: _stdin_event(fd, stop))

    try:
        source_id = server.attach(None)  # binds and listens now; 0 when it cannot
    except GLib.Error as exc:
        print(f"rtsp_server: cannot listen on {args.host}:{args.port}: {exc.message}",
              file=sys.stderr, flush=True)
        return 3
    if not source_id:
        print(f"rtsp_server: cannot listen on {args.host}:{args.port}", file=sys.stderr,
              flush=True)
        return 3

    port = server.get_bound_port()
    print(f"READY rtsp://{args.host}:{port}{args.path}", flush=True)
    try:
        loop.run()
    finally:
        # Drop the clients so they see the camera go away, then the listening socket.
        server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
        GLib.source_remove(source_id)
    return 0


def _stdin_event(fd: int, stop) -> bool:
    """Quit on EOF/hang-up of stdin; swallow anything else written to it."""
    try:
        data = os.read(fd, 4096)
    except OSError:  # any read error means the parent is gone
        data = b""
    if not data:
        stop()
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
