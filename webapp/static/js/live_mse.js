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
  var WALL_RETRY_MS = 1000;
  var WALL_RETRY_MAX_MS = 10000;

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

  // One MPEG-4 descriptor at `at`: its tag, where its body starts and where it ends (the size
  // is 1 to 4 bytes of 7 bits each, ISO/IEC 14496-1).
  function descriptor(bytes, at, end) {
    var size = 0, pos = at + 1;
    for (var k = 0; k < 4 && pos < end; k++) {
      var c = bytes[pos++];
      size = size * 128 + (c & 0x7f);
      if (!(c & 0x80)) { break; }
    }
    return { tag: bytes[at], body: pos, end: Math.min(pos + size, end) };
  }

  // The AAC codec string of an esds box whose ES_Descriptor starts at `at`: "mp4a.40." and the
  // audio object type, the first 5 bits of the DecoderSpecificInfo inside the
  // DecoderConfigDescriptor; "mp4a.40.2" (AAC-LC) if the box is not as expected.
  function aacCodec(init, at, end) {
    var es = descriptor(init, at, end);
    if (es.tag !== 3) { return "mp4a.40.2"; }
    var pos = es.body + 2; // ES_ID
    var flags = init[pos++];
    if (flags & 0x80) { pos += 2; }            // dependsOn_ES_ID
    if (flags & 0x40) { pos += 1 + init[pos]; } // URL
    if (flags & 0x20) { pos += 2; }            // OCR_ES_Id
    var config = descriptor(init, pos, es.end);
    if (config.tag !== 4) { return "mp4a.40.2"; }
    var specific = descriptor(init, config.body + 13, config.end); // after type, stream, rates
    if (specific.tag !== 5 || specific.body >= specific.end) { return "mp4a.40.2"; }
    var type = init[specific.body] >> 3;
    if (type === 31) { type = 32 + (((init[specific.body] & 7) << 3) | (init[specific.body + 1] >> 5)); }
    return type ? "mp4a.40." + type : "mp4a.40.2";
  }

  // The MIME type with codecs of an init segment: its avcC (H.264) or hvcC (H.265) box, and its
  // esds (AAC) when the camera has sound. Null without a video codec this player knows.
  function mimeOf(init) {
    var video = null, audio = null;
    for (var i = 4; i + 4 < init.length; i++) {
      var kind = text(init, i);
      if (kind === "avcC" && !video) {
        video = "avc1." + hex(init[i + 5]) + hex(init[i + 6]) + hex(init[i + 7]);
      } else if (kind === "hvcC" && !video) {
        video = "hvc1.1.6.L93.B0";
      } else if (kind === "esds" && !audio) {
        var size = ((init[i - 4] << 24) >>> 0) + (init[i - 3] << 16) + (init[i - 2] << 8) + init[i - 1];
        audio = aacCodec(init, i + 8, Math.min(init.length, i - 4 + size));
      }
    }
    if (!video) { return null; }
    return 'video/mp4; codecs="' + video + (audio ? "," + audio : "") + '"';
  }

  function concat(a, b) {
    var joined = new Uint8Array(a.length + b.length);
    joined.set(a, 0);
    joined.set(b, a.length);
    return joined;
  }

  // Plays fMP4 bytes handed to it (`take`) in one <video> through MSE; `onFail(reason)` is
  // called once if it cannot (codec not supported, buffer full).
  function Sink(video, onFail) {
    this.video = video;
    this.onFail = onFail;
    this.queue = [];
    this.head = new Uint8Array(0); // bytes before the init segment is complete
    this.buffer = null;
    this.ended = false;
    this.trimmedAt = 0;
    this.gotMedia = false;
    var MS = mediaSourceClass();
    this.source = new MS();
    var sink = this;
    this.source.addEventListener("sourceopen", function () { sink.take(new Uint8Array(0)); }, { once: true });
    video.disableRemotePlayback = true; // ManagedMediaSource (Safari) asks for it
    this.objectUrl = URL.createObjectURL(this.source);
    video.src = this.objectUrl;
  }

  Sink.prototype.take = function (bytes) {
    if (this.ended) { return; }
    if (!this.buffer) {
      this.head = concat(this.head, bytes);
      if (this.source.readyState !== "open") { return; }
      var length = initLength(this.head);
      if (!length) { return; }
      var mime = mimeOf(this.head.subarray(0, length));
      var MS = mediaSourceClass();
      if (!mime || !MS.isTypeSupported(mime)) { this.fail("unsupported"); return; }
      this.buffer = this.source.addSourceBuffer(mime);
      this.video.dataset.liveSound = mime.indexOf("mp4a") >= 0 ? "yes" : "no";
      this.video.dispatchEvent(new CustomEvent("nvr-live-sound"));
      var sink = this;
      this.buffer.addEventListener("updateend", function () { sink.appended(); });
      bytes = this.head;
      this.head = null;
    }
    this.queue.push(bytes);
    this.appendNext();
  };

  Sink.prototype.appendNext = function () {
    if (this.ended || !this.buffer || this.buffer.updating || !this.queue.length) { return; }
    var bytes = this.queue.length === 1 ? this.queue[0] : this.queue.reduce(concat);
    this.queue = [];
    try {
      this.buffer.appendBuffer(bytes);
    } catch (error) {
      this.fail(String(error.message || error)); // QuotaExceeded, or the source closed
    }
  };

  Sink.prototype.appended = function () {
    if (this.ended) { return; }
    this.gotMedia = true;
    this.chase();
    if (!this.trim()) { this.appendNext(); }
  };

  // Stay near the newest frame: jump when far behind, play faster when a little behind.
  Sink.prototype.chase = function () {
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
  Sink.prototype.trim = function () {
    var now = this.video.currentTime;
    if (now - this.trimmedAt < TRIM_EVERY_S || now < KEEP_S) { return false; }
    this.trimmedAt = now;
    this.buffer.remove(0, now - KEEP_S);
    return true;
  };

  Sink.prototype.fail = function (reason) {
    if (this.ended) { return; }
    this.stop();
    this.onFail(reason);
  };

  Sink.prototype.stop = function () {
    this.ended = true;
    this.video.removeAttribute("src");
    this.video.load();
    URL.revokeObjectURL(this.objectUrl);
  };

  // Reads a response body with fetch(), handing each part to `onBytes`; `onEnd(reason)` once.
  function readStream(url, abort, onBytes, onEnd) {
    window.fetch(url, { credentials: "same-origin", cache: "no-store", signal: abort.signal })
      .then(function (response) {
        if (!response.ok || !response.body) { throw new Error("HTTP " + response.status); }
        var reader = response.body.getReader();
        function pump() {
          return reader.read().then(function (part) {
            if (part.done) { throw new Error("the stream ended"); }
            onBytes(part.value);
            return pump();
          });
        }
        return pump();
      })
      .catch(function (error) { onEnd(String(error && error.message || error)); });
  }

  // One camera's stream (GET /live/<camera>/live.mp4) into one <video>; `onEnd(reason, played)`
  // is called once when it ends (played: it showed a picture for a while).
  function Player(video, url, onEnd) {
    this.abort = new AbortController();
    this.startedAt = Date.now();
    this.ended = false;
    this.onEnd = onEnd;
    var player = this;
    this.sink = new Sink(video, function (reason) { player.finish(reason); });
    readStream(url, this.abort, function (bytes) { player.sink.take(bytes); },
      function (reason) { player.finish(reason); });
  }

  Player.supported = function () {
    var MS = mediaSourceClass();
    return Boolean(MS && window.fetch && window.ReadableStream && MS.isTypeSupported &&
      MS.isTypeSupported('video/mp4; codecs="avc1.42E01E"'));
  };

  Player.prototype.finish = function (reason) {
    if (this.ended) { return; }
    var played = this.sink.gotMedia && Date.now() - this.startedAt > PLAYED_MS;
    this.stop();
    this.onEnd(reason, played);
  };

  Player.prototype.stop = function () {
    this.ended = true;
    this.abort.abort();
    this.sink.stop();
  };

  // Several cameras over one connection (GET /live/_wall?camera=..., framed: 4-byte length,
  // camera index, 1 if an init segment leads), each into its own <video>. It reconnects by
  // itself, forever (a wall display after a hub restart or a network drop).
  function Wall(url, videos) {
    this.url = url;
    this.videos = videos;
    this.sinks = videos.map(function () { return null; });
    this.pending = new Uint8Array(0);
    this.delay = WALL_RETRY_MS;
    this.stopped = false;
    this.connect();
  }

  Wall.prototype.connect = function () {
    var wall = this;
    this.abort = new AbortController();
    this.pending = new Uint8Array(0);
    readStream(this.url, this.abort, function (bytes) { wall.take(bytes); }, function () {
      if (wall.stopped) { return; }
      wall.timer = window.setTimeout(function () { wall.connect(); }, wall.delay);
      wall.delay = Math.min(wall.delay * 2, WALL_RETRY_MAX_MS);
    });
  };

  Wall.prototype.take = function (bytes) {
    this.delay = WALL_RETRY_MS; // it answers: the next drop is retried quickly again
    var data = concat(this.pending, bytes);
    var pos = 0;
    while (data.length - pos >= 6) {
      var size = ((data[pos] << 24) >>> 0) + (data[pos + 1] << 16) + (data[pos + 2] << 8) + data[pos + 3];
      if (data.length - pos - 6 < size) { break; }
      this.frame(data[pos + 4], data[pos + 5] === 1, data.subarray(pos + 6, pos + 6 + size));
      pos += 6 + size;
    }
    this.pending = data.slice(pos);
  };

  Wall.prototype.frame = function (index, startsRun, payload) {
    if (index >= this.videos.length) { return; }
    if (startsRun || !this.sinks[index]) {
      if (!startsRun) { return; } // mid-run bytes for a camera that lost its player: wait
      if (this.sinks[index]) { this.sinks[index].stop(); }
      var wall = this;
      this.sinks[index] = new Sink(this.videos[index], function () {
        wall.sinks[index] = null;
        wall.abort.abort(); // start every camera over on a new connection
      });
    }
    this.sinks[index].take(payload);
  };

  Wall.prototype.stop = function () {
    this.stopped = true;
    window.clearTimeout(this.timer);
    this.abort.abort();
    this.sinks.forEach(function (sink) { if (sink) { sink.stop(); } });
  };

  window.nvrLiveMse = { Player: Player, Wall: Wall };
})();
