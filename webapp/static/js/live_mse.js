// The low-latency live player: reads a camera's fragmented MP4 (GET /live/<camera>/live.mp4,
// one frame per fragment) with fetch() and feeds it to Media Source Extensions, keeping the
// picture a fraction of a second behind the newest frame (docs/design/live.md).
(function () {
  "use strict";

  var MAX_LAG_S = 0.8;     // further behind the newest frame than this: jump to it
  var CATCH_UP_LAG_S = 0.3; // further than this: play a little faster until caught up
  var JUMP_BEHIND_S = 0.1;  // where a jump lands, behind the newest frame
  var KEEP_S = 10;          // seconds of played picture kept in the buffer
  var TRIM_EVERY_S = 20;
  var PLAYED_MS = 5000;

  function mediaSourceClass() {
    return window.ManagedMediaSource || window.MediaSource || null;
  }

  function text(bytes, at) {
    return String.fromCharCode(bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]);
  }

  function hex(n) { return (n < 16 ? "0" : "") + n.toString(16); }

  // The byte length of the init segment (ftyp + moov) at the start of `bytes`, or 0.
  function initLength(bytes) {
    var pos = 0;
    while (pos + 8 <= bytes.length) {
      var size = ((bytes[pos] << 24) >>> 0) + (bytes[pos + 1] << 16) + (bytes[pos + 2] << 8) + bytes[pos + 3];
      if (size < 8 || pos + size > bytes.length) { return 0; }
      pos += size;
      if (text(bytes, pos - size + 4) === "moov") { return pos; }
    }
    return 0;
  }

  // The MIME type with codecs of an init segment, from its avcC (H.264) or hvcC (H.265) box.
  function mimeOf(init) {
    for (var i = 0; i + 8 < init.length; i++) {
      var kind = text(init, i);
      if (kind === "avcC") {
        return 'video/mp4; codecs="avc1.' + hex(init[i + 5]) + hex(init[i + 6]) + hex(init[i + 7]) + '"';
      }
      if (kind === "hvcC") { return 'video/mp4; codecs="hvc1.1.6.L93.B0"'; }
    }
    return null;
  }

  function concat(a, b) {
    var joined = new Uint8Array(a.length + b.length);
    joined.set(a, 0);
    joined.set(b, a.length);
    return joined;
  }

  // One run of the stream into one <video>; `onEnd(reason)` is called once when it ends.
  function Player(video, url, onEnd) {
    this.video = video;
    this.url = url;
    this.onEnd = onEnd;
    this.queue = [];
    this.head = new Uint8Array(0); // bytes before the init segment is complete
    this.buffer = null;
    this.ended = false;
    this.trimmedAt = 0;
    this.startedAt = Date.now();
    this.gotMedia = false;
    this.abort = new AbortController();
    var MS = mediaSourceClass();
    this.source = new MS();
    var player = this;
    this.source.addEventListener("sourceopen", function () { player.read(); }, { once: true });
    video.disableRemotePlayback = true; // ManagedMediaSource (Safari) asks for it
    this.objectUrl = URL.createObjectURL(this.source);
    video.src = this.objectUrl;
  }

  Player.supported = function () {
    var MS = mediaSourceClass();
    return Boolean(MS && window.fetch && window.ReadableStream && MS.isTypeSupported &&
      MS.isTypeSupported('video/mp4; codecs="avc1.42E01E"'));
  };

  Player.prototype.read = function () {
    var player = this;
    window.fetch(this.url, { credentials: "same-origin", cache: "no-store", signal: this.abort.signal })
      .then(function (response) {
        if (!response.ok || !response.body) { throw new Error("HTTP " + response.status); }
        var reader = response.body.getReader();
        function pump() {
          return reader.read().then(function (part) {
            if (part.done) { throw new Error("the stream ended"); }
            player.take(part.value);
            return pump();
          });
        }
        return pump();
      })
      .catch(function (error) { player.finish(String(error && error.message || error)); });
  };

  Player.prototype.take = function (bytes) {
    if (this.ended) { return; }
    if (!this.buffer) {
      this.head = concat(this.head, bytes);
      var length = initLength(this.head);
      if (!length) { return; }
      var mime = mimeOf(this.head.subarray(0, length));
      var MS = mediaSourceClass();
      if (!mime || !MS.isTypeSupported(mime)) { this.finish("unsupported"); return; }
      this.buffer = this.source.addSourceBuffer(mime);
      var player = this;
      this.buffer.addEventListener("updateend", function () { player.appended(); });
      bytes = this.head;
      this.head = null;
    }
    this.queue.push(bytes);
    this.appendNext();
  };

  Player.prototype.appendNext = function () {
    if (this.ended || !this.buffer || this.buffer.updating || !this.queue.length) { return; }
    var bytes = this.queue.length === 1 ? this.queue[0] : this.queue.reduce(concat);
    this.queue = [];
    try {
      this.buffer.appendBuffer(bytes);
    } catch (error) {
      this.finish(String(error.message || error)); // QuotaExceeded, or the source closed
    }
  };

  Player.prototype.appended = function () {
    if (this.ended) { return; }
    this.gotMedia = true;
    this.chase();
    if (!this.trim()) { this.appendNext(); }
  };

  // Stay near the newest frame: jump when far behind, play faster when a little behind.
  Player.prototype.chase = function () {
    var ranges = this.video.buffered;
    if (!ranges.length) { return; }
    var start = ranges.start(ranges.length - 1);
    var end = ranges.end(ranges.length - 1);
    var now = this.video.currentTime;
    if (now < start || end - now > MAX_LAG_S) {
      this.video.currentTime = Math.max(start, end - JUMP_BEHIND_S);
    }
    this.video.playbackRate = end - this.video.currentTime > CATCH_UP_LAG_S ? 1.25 : 1.0;
    if (this.video.paused) {
      this.video.play().catch(function () { /* autoplay refused: the controls still work */ });
    }
  };

  // Drop what was played long ago (MSE buffers are bounded); true if a removal started.
  Player.prototype.trim = function () {
    var now = this.video.currentTime;
    if (now - this.trimmedAt < TRIM_EVERY_S || now < KEEP_S) { return false; }
    this.trimmedAt = now;
    this.buffer.remove(0, now - KEEP_S);
    return true;
  };

  Player.prototype.finish = function (reason) {
    if (this.ended) { return; }
    this.stop();
    // played: it showed a picture for a while (a stream the server ended, not a failure)
    this.onEnd(reason, this.gotMedia && Date.now() - this.startedAt > PLAYED_MS);
  };

  Player.prototype.stop = function () {
    this.ended = true;
    this.abort.abort();
    this.video.removeAttribute("src");
    this.video.load();
    URL.revokeObjectURL(this.objectUrl);
  };

  window.nvrLiveMse = { Player: Player };
})();
