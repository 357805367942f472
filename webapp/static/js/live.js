// The live view: plays each camera's fragmented MP4 stream through Media Source Extensions
// (live_mse.js: a fraction of a second behind real time), or where MSE is missing its rolling
// HLS (1-second pieces written by the hub, a second or two behind) with hls.js or the
// browser's own HLS; and keeps the status line and the "offline since" overlay current from
// GET /api/v1/cameras.
(function () {
  "use strict";

  var STATUS_EVERY_MS = 3000;
  // The hub starts a camera's live view when its playlist is first asked for (a few seconds),
  // and a restarted stream starts a new playlist: retry quickly for a while, then slowly.
  var RETRY_MS = 1000;
  var PATIENT_FAILURES = 10;
  var SLOW_RETRY_MS = 10000;
  var STALL_MS = 8000;
  // A browser opens at most six connections to a site over HTTP/1.1: a page of several cameras
  // gets them all over one wall stream (up to this many; any more play over HLS).
  var WALL_MAX = 16;
  // Start one piece behind the live edge, and catch up by playing faster rather than buffering:
  // a live picture a few seconds late is worth more than a smooth one.
  var HLS_CONFIG = {
    liveSyncDurationCount: 1,
    liveMaxLatencyDurationCount: 4,
    maxLiveSyncPlaybackRate: 1.5,
    lowLatencyMode: false, // plain HLS: the hub writes whole pieces, no LL-HLS parts
    maxBufferLength: 4,
    backBufferLength: 4,
    manifestLoadingMaxRetry: 0, // a 404 while the hub starts the live view: live.js retries
    levelLoadingMaxRetry: 2,
    fragLoadingMaxRetry: 2
  };

  function localTime(iso) {
    var when = new Date(iso);
    return isNaN(when.getTime()) ? String(iso) : when.toLocaleString();
  }

  function formatBitrate(bps) {
    if (bps >= 1e6) { return (bps / 1e6).toFixed(1) + " Mbit/s"; }
    if (bps >= 1e3) { return Math.round(bps / 1e3) + " kbit/s"; }
    return Math.round(bps) + " bit/s";
  }

  function offlineText(camera) {
    if (camera.stale) { return "The hub is not reporting (last heard " + localTime(camera.offline_since) + ")"; }
    if (!camera.enabled) { return "Recording is disabled"; }
    if (camera.offline_since) { return "Offline since " + localTime(camera.offline_since); }
    return "Not live";
  }

  function badge(camera) {
    if (camera.online) { return ["online", "badge text-bg-success"]; }
    if (camera.stale) { return ["hub silent", "badge text-bg-warning"]; }
    return ["offline", "badge text-bg-secondary"];
  }

  function canPlayNatively(video) {
    return Boolean(video.canPlayType("application/vnd.apple.mpegurl"));
  }

  // One camera on the page: its <video>, overlay and status fields.
  function Tile(root) {
    this.root = root;
    this.name = root.getAttribute("data-live-camera");
    this.src = root.getAttribute("data-playlist");
    this.stream = root.getAttribute("data-stream");
    this.useMse = false; // set by the page once it knows how many tiles it has
    this.onWall = false; // fed by the page's wall stream, not a stream of its own
    this.player = null;
    this.video = root.querySelector("[data-live-video]");
    this.overlay = root.querySelector("[data-live-overlay]");
    this.message = root.querySelector("[data-live-message]");
    this.wanted = this.overlay.hidden; // the page was rendered with the camera online
    this.hls = null;
    this.active = false;
    this.retryTimer = null;
    this.failures = 0;
    this.lastProgress = Date.now();
    var tile = this;
    this.video.addEventListener("playing", function () {
      tile.failures = 0;
      tile.showOverlay(null);
    });
    this.video.addEventListener("timeupdate", function () {
      tile.lastProgress = Date.now();
      if (tile.active && !tile.video.paused) { tile.showOverlay(null); } // never over a moving picture
    });
    this.video.addEventListener("error", function () {
      if (tile.active && !tile.hls) { tile.fail(); }
    });
    this.video.addEventListener("nvr-live-sound", function () { tile.showSound(); });
    this.video.addEventListener("volumechange", function () { tile.showSound(); });
  }

  // Whether the stream carries sound, and whether it is heard (the player starts muted).
  Tile.prototype.showSound = function () {
    var sound = this.video.dataset.liveSound;
    if (!sound) { return; }
    var heard = !this.video.muted && this.video.volume > 0;
    this.setField("sound", sound === "no" ? "none from this camera" :
      heard ? "on" : "muted (the speaker button turns it on)");
  };

  Tile.prototype.field = function (name) {
    return this.root.querySelector('[data-field="' + name + '"]');
  };

  Tile.prototype.setField = function (name, text, hidden) {
    var el = this.field(name);
    if (el) {
      el.textContent = text;
      el.hidden = Boolean(hidden);
    }
  };

  Tile.prototype.showOverlay = function (text) {
    this.overlay.hidden = text === null;
    if (text !== null) { this.message.textContent = text; }
  };

  // quiet: a stream that played and ended (the server ends each after minutes) starts again
  // without covering the picture.
  Tile.prototype.start = function (quiet) {
    if (this.active) { return; }
    window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.active = true;
    this.lastProgress = Date.now();
    if (!this.failures && !quiet) { this.showOverlay("Connecting…"); }
    var tile = this;
    var video = this.video;
    if (this.onWall) {
      return; // the wall stream feeds it; it reconnects by itself
    } else if (this.useMse) {
      this.player = new window.nvrLiveMse.Player(video, this.stream, function (reason, played) {
        tile.player = null;
        if (!tile.active) { return; }
        if (reason === "unsupported") { tile.useMse = false; } // this camera's codec: use HLS
        tile.active = false;
        if (played) { tile.failures = 0; tile.start(true); } else { tile.fail(); }
      });
    } else if (window.Hls && window.Hls.isSupported()) {
      var hls = new window.Hls(HLS_CONFIG);
      hls.on(window.Hls.Events.ERROR, function (_event, data) {
        if (data.fatal) { tile.fail(); }
      });
      hls.on(window.Hls.Events.MANIFEST_PARSED, function () {
        video.play().catch(function () { /* autoplay refused: the controls still work */ });
      });
      hls.on(window.Hls.Events.BUFFER_CODECS, function (_event, data) {
        video.dataset.liveSound = data && data.audio ? "yes" : "no"; // as the MSE player says
        tile.showSound();
      });
      hls.loadSource(this.src);
      hls.attachMedia(video);
      this.hls = hls;
    } else if (canPlayNatively(video)) {
      video.src = this.src;
      video.play().catch(function () { /* autoplay refused */ });
    } else {
      this.active = false;
      this.showOverlay("This browser cannot play live video");
    }
  };

  Tile.prototype.stop = function () {
    window.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.onWall) {
      // the wall stream goes on: the picture comes back by itself with the camera
    } else if (this.player) {
      this.player.stop();
      this.player = null;
    } else if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    } else if (this.active) {
      this.video.removeAttribute("src");
      this.video.load();
    }
    this.active = false;
  };

  // No playlist (yet), or it went away: try again, quickly at first.
  Tile.prototype.fail = function () {
    this.stop();
    this.failures += 1;
    var patient = this.failures < PATIENT_FAILURES;
    this.showOverlay(patient ? "Starting the live view…" : "No live picture from the hub yet");
    var tile = this;
    if (this.wanted) {
      var delay = patient ? RETRY_MS : SLOW_RETRY_MS;
      this.retryTimer = window.setTimeout(function () {
        tile.retryTimer = null;
        tile.start();
      }, delay);
    }
  };

  // A restarted stream starts a new playlist; a player that stopped moving starts over.
  Tile.prototype.checkStall = function () {
    if (this.active && !this.onWall && !this.video.paused && Date.now() - this.lastProgress > STALL_MS) {
      this.stop();
      this.start();
    }
  };

  Tile.prototype.update = function (camera) {
    if (!camera) {
      this.wanted = false;
      this.stop();
      this.showOverlay("This camera was removed");
      return;
    }
    var look = badge(camera);
    var el = this.field("badge");
    if (el) {
      el.textContent = look[0];
      el.className = look[1];
    }
    this.setField("fps", camera.fps.toFixed(1) + " fps", !camera.online);
    this.setField("bitrate", formatBitrate(camera.bitrate), !camera.online);
    this.setField("offline", offlineText(camera), camera.online);
    this.setField("state", camera.state);
    this.setField("connected", camera.connected_since ? localTime(camera.connected_since) : "–");
    this.setField("last-segment", camera.last_segment_end ? localTime(camera.last_segment_end) : "never");
    this.setField("restarts", String(camera.restarts));
    this.wanted = camera.online;
    if (camera.online) {
      if (this.retryTimer === null) { this.start(); } // else the retry restarts it
      this.checkStall();
    } else {
      this.stop();
      this.failures = 0;
      this.showOverlay(offlineText(camera));
    }
  };

  function refresh(url, tiles) {
    if (document.hidden) { return; }
    window.nvr.fetchJSON(url).then(function (cameras) {
      var byName = {};
      cameras.forEach(function (camera) { byName[camera.name] = camera; });
      tiles.forEach(function (tile) { tile.update(byName[tile.name]); });
    }).catch(function (error) {
      if (error.status === 401) { window.location.reload(); } // the session ended: log in again
    });
  }

  // Click a picture (or its Enlarge button) to make it as wide as the grid, and back.
  function setUpEnlarge(page) {
    Array.prototype.forEach.call(page.querySelectorAll("[data-live-camera]"), function (root) {
      var column = root.closest(".col");
      var button = root.querySelector("[data-live-enlarge]");
      if (!column || !button) { return; }
      function toggle() {
        var enlarged = column.classList.toggle("live-enlarged");
        button.textContent = enlarged ? "Shrink" : "Enlarge";
        button.setAttribute("aria-pressed", String(enlarged));
      }
      button.addEventListener("click", toggle);
      root.querySelector("[data-live-video]").addEventListener("click", toggle);
    });
  }

  // "Fit to screen": every tile in the whole window (full screen where allowed), for a wall
  // display; Esc (or leaving full screen) goes back.
  function setUpFit(page) {
    var button = document.querySelector("[data-live-fit]");
    if (!button) { return; }
    var count = page.querySelectorAll("[data-live-camera]").length;
    page.style.setProperty("--live-cols", String(Math.max(1, Math.ceil(Math.sqrt(count)))));
    function set(on) {
      page.classList.toggle("live-fit", on);
      button.setAttribute("aria-pressed", String(on));
    }
    button.addEventListener("click", function () {
      set(true);
      if (page.requestFullscreen) { page.requestFullscreen().catch(function () { /* a window is fine */ }); }
    });
    document.addEventListener("fullscreenchange", function () {
      if (!document.fullscreenElement) { set(false); }
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape") { set(false); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var page = document.querySelector("[data-live-page]");
    if (!page) { return; }
    var url = page.getAttribute("data-status-url");
    var tiles = Array.prototype.map.call(page.querySelectorAll("[data-live-camera]"),
      function (root) { return new Tile(root); });
    var mse = Boolean(window.nvrLiveMse && window.nvrLiveMse.Player.supported());
    tiles.forEach(function (tile) { tile.useMse = mse && Boolean(tile.stream); });
    var wallUrl = page.getAttribute("data-wall-url");
    if (mse && wallUrl && tiles.length > 1) {
      var onWall = tiles.slice(0, WALL_MAX);
      onWall.forEach(function (tile) { tile.onWall = true; });
      tiles.slice(WALL_MAX).forEach(function (tile) { tile.useMse = false; }); // HLS: no connection held
      var query = onWall.map(function (tile) { return "camera=" + encodeURIComponent(tile.name); });
      new window.nvrLiveMse.Wall(wallUrl + "?" + query.join("&"),
        onWall.map(function (tile) { return tile.video; }));
    }
    tiles.forEach(function (tile) { if (tile.wanted) { tile.start(); } });
    window.setInterval(function () { refresh(url, tiles); }, STATUS_EVERY_MS);
    setUpEnlarge(page);
    setUpFit(page);
  });
})();
