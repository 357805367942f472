// Several cameras playing the same wall-clock moment (the timeline page's grid).
//
// One shared clock holds the wall-clock time (ms since the epoch) and a rate. Each tile plays
// an HLS playlist of its camera from about that time for an hour, and maps wall clock to media
// time through the fragments' EXT-X-PROGRAM-DATE-TIME (as player.js does). Every 200 ms each
// tile is checked against the clock: one that drifts by more than 0.3 s is seeked back; one
// with no fragment at that moment shows "No footage"; while a tile with footage is still
// loading or seeking, the clock holds, so the others wait for it instead of running ahead.
(function () {
  "use strict";

  var TICK_MS = 200;
  var MAX_DRIFT_S = 0.3;
  var WINDOW_MS = 3600 * 1000; // each playlist covers an hour from where it was loaded
  var HAVE_FUTURE_DATA = 3;
  var MAX_WAIT_MS = 8000; // a tile that cannot catch up by then no longer holds the others
  var RELOAD_AFTER_MS = 4000; // near "now", a playlist that ran out is asked again this often

  function isoOf(ms) {
    return new Date(ms).toISOString();
  }

  // The fragment whose wall-clock span holds ``wall``, or null (a gap, or outside).
  function fragmentAtWall(fragments, wall) {
    var low = 0;
    var high = fragments.length - 1;
    var found = null;
    while (low <= high) {
      var middle = (low + high) >> 1;
      if (fragments[middle].programDateTime <= wall) {
        found = fragments[middle];
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    if (found && wall < found.programDateTime + found.duration * 1000) {
      return found;
    }
    return null;
  }

  function fragmentAtMedia(fragments, time) {
    var found = null;
    for (var i = 0; i < fragments.length; i += 1) {
      if (fragments[i].start <= time + 0.01) {
        found = fragments[i];
      } else {
        break;
      }
    }
    return found;
  }

  function Tile(element, camera, playlistTemplate) {
    this.element = element;
    this.camera = camera;
    this.video = element.querySelector("video");
    this.empty = element.querySelector(".nvr-tile-empty");
    this.playlistTemplate = playlistTemplate;
    this.hls = null;
    this.fragments = [];
    this.loadedFrom = null; // wall-clock range the playlist was asked for
    this.loadedTo = null;
    this.loadedAt = 0;
    this.waitingSince = null;
    this.loading = false;
    this.generation = 0;
  }

  // Whether the loaded playlist answers for ``wall``. A playlist is a snapshot: past its last
  // fragment, footage recorded since may exist, so it is asked again every few seconds.
  Tile.prototype.covers = function (wall) {
    if (this.loadedFrom === null || wall < this.loadedFrom || wall >= this.loadedTo) {
      return false;
    }
    var last = this.fragments[this.fragments.length - 1];
    var lastEnd = last ? last.programDateTime + last.duration * 1000 : this.loadedFrom;
    return wall < lastEnd || Date.now() - this.loadedAt < RELOAD_AFTER_MS;
  };

  Tile.prototype.load = function (wall) {
    var tile = this;
    var generation = (this.generation += 1);
    this.destroy();
    this.loading = true;
    this.loadedFrom = wall;
    this.loadedTo = wall + WINDOW_MS;
    this.loadedAt = Date.now();
    var url = this.playlistTemplate.replace("CAMERA", encodeURIComponent(this.camera)) +
      "?start=" + encodeURIComponent(isoOf(wall)) + "&end=" + encodeURIComponent(isoOf(wall + WINDOW_MS));
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (text) {
        if (generation !== tile.generation) {
          return;
        }
        tile.fragments = text ? window.nvrHlsPlaylist.parse(text) : []; // hls_playlist.js
        tile.loading = false;
        if (tile.fragments.length) {
          tile.attach(url, wall);
        }
      })
      .catch(function () {
        tile.loading = false;
        tile.fragments = [];
      });
  };

  Tile.prototype.attach = function (url, wall) {
    var tile = this;
    var first = fragmentAtWall(this.fragments, wall);
    var start = first ? first.start + (wall - first.programDateTime) / 1000 : 0;
    if (window.Hls && window.Hls.isSupported()) {
      var hls = new window.Hls({ startPosition: start, maxBufferLength: 20 });
      hls.on(window.Hls.Events.LEVEL_LOADED, function (_event, data) {
        // hls.js's own fragments: it corrects their start as it parses them
        tile.fragments = data.details.fragments;
      });
      hls.on(window.Hls.Events.ERROR, function (_event, data) {
        if (data.fatal && data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
          hls.recoverMediaError();
        } else if (data.fatal) {
          hls.destroy();
          tile.hls = null;
        }
      });
      hls.loadSource(url);
      hls.attachMedia(this.video);
      this.hls = hls;
    } else {
      this.video.src = url;
      this.video.addEventListener("loadedmetadata", function () {
        tile.video.currentTime = start;
      }, { once: true });
    }
  };

  Tile.prototype.destroy = function () {
    if (this.hls) {
      this.hls.destroy();
      this.hls = null;
    }
    this.fragments = [];
  };

  Tile.prototype.mediaTimeAt = function (wall) {
    var fragment = fragmentAtWall(this.fragments, wall);
    return fragment ? fragment.start + (wall - fragment.programDateTime) / 1000 : null;
  };

  Tile.prototype.wallClock = function () {
    var fragment = fragmentAtMedia(this.fragments, this.video.currentTime);
    if (!fragment || typeof fragment.programDateTime !== "number") {
      return null;
    }
    return fragment.programDateTime + (this.video.currentTime - fragment.start) * 1000;
  };

  // Bring the tile to the clock; return true while it must be waited for.
  Tile.prototype.follow = function (wall, playing, rate) {
    if (!this.covers(wall) && !this.loading) {
      this.load(wall);
    }
    var target = this.loading ? null : this.mediaTimeAt(wall);
    this.empty.hidden = this.loading || target !== null;
    this.element.classList.toggle("nvr-tile-no-footage", !this.loading && target === null);
    if (target === null) {
      if (!this.video.paused) {
        this.video.pause();
      }
      return this.loading;
    }
    var video = this.video;
    if (!video.seeking && Math.abs(video.currentTime - target) > MAX_DRIFT_S) {
      video.currentTime = target;
    }
    if (video.playbackRate !== rate) {
      video.playbackRate = rate;
    }
    if (playing && video.paused) {
      video.play().catch(function () { /* muted autoplay may still be refused: the clock waits */ });
    } else if (!playing && !video.paused) {
      video.pause();
    }
    var waiting = video.seeking || video.readyState < HAVE_FUTURE_DATA;
    if (!waiting) {
      this.waitingSince = null;
      return false;
    }
    this.waitingSince = this.waitingSince || Date.now();
    return Date.now() - this.waitingSince < MAX_WAIT_MS;
  };

  function SyncPlayers(grid, template, playlistTemplate) {
    this.grid = grid;
    this.template = template;
    this.playlistTemplate = playlistTemplate;
    this.tiles = [];
    this.wall = null;
    this.playing = false;
    this.rate = 1;
    this.waiting = false;
    this.lastTick = performance.now();
    this.listeners = [];
    var players = this;
    window.setInterval(function () { players.tick(); }, TICK_MS);
  }

  SyncPlayers.prototype.setCameras = function (cameras) {
    var players = this;
    this.tiles.forEach(function (tile) {
      tile.generation += 1;
      tile.destroy();
    });
    this.grid.textContent = "";
    this.tiles = cameras.map(function (camera) {
      var element = players.template.content.firstElementChild.cloneNode(true);
      element.setAttribute("data-camera", camera);
      element.querySelector("figcaption").textContent = camera;
      element.querySelector("video").setAttribute("aria-label", "Footage of " + camera);
      players.grid.appendChild(element);
      return new Tile(element, camera, players.playlistTemplate);
    });
    this.grid.setAttribute("data-count", String(this.tiles.length));
    this.grid.hidden = this.tiles.length === 0;
    this.tick();
  };

  SyncPlayers.prototype.seek = function (wall) {
    this.wall = wall;
    this.tick();
  };

  SyncPlayers.prototype.play = function () {
    if (this.wall === null) {
      return;
    }
    this.playing = true;
    this.tick();
  };

  SyncPlayers.prototype.pause = function () {
    this.playing = false;
    this.tick();
  };

  SyncPlayers.prototype.toggle = function () {
    if (this.playing) {
      this.pause();
    } else {
      this.play();
    }
  };

  SyncPlayers.prototype.setRate = function (rate) {
    this.rate = rate;
    this.tick();
  };

  SyncPlayers.prototype.onTick = function (listener) {
    this.listeners.push(listener);
  };

  SyncPlayers.prototype.tick = function () {
    var now = performance.now();
    var elapsed = now - this.lastTick;
    this.lastTick = now;
    if (this.wall === null) {
      return;
    }
    if (this.playing && !this.waiting) {
      this.wall += elapsed * this.rate;
    }
    var wall = this.wall;
    var playing = this.playing;
    var rate = this.rate;
    var waiting = false;
    this.tiles.forEach(function (tile) {
      waiting = tile.follow(wall, playing, rate) || waiting;
    });
    this.waiting = waiting;
    var players = this;
    this.listeners.forEach(function (listener) { listener(players); });
  };

  // What each tile shows, for the page and the browser tests.
  SyncPlayers.prototype.state = function () {
    return this.tiles.map(function (tile) {
      var fragment = fragmentAtMedia(tile.fragments, tile.video.currentTime);
      return {
        camera: tile.camera, currentTime: tile.video.currentTime, paused: tile.video.paused,
        readyState: tile.video.readyState, noFootage: !tile.empty.hidden,
        wall: tile.wallClock(),
        fragmentStart: fragment ? fragment.start : null,
        fragmentDateTime: fragment ? fragment.programDateTime : null
      };
    });
  };

  window.NvrSyncPlayers = SyncPlayers;
})();
