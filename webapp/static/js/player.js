// The recordings player: plays the page's HLS playlist, shows the wall-clock time of the
// picture, and lets the export form take its range from what is playing.
//
// hls.js plays it wherever Media Source Extensions exist (Chrome, Edge, Firefox, desktop
// Safari): it transmuxes the MPEG-TS segments to fragmented MP4 in the browser. Without MSE
// (older iPhones) Safari's own HLS player takes the playlist. The wall clock comes from each
// segment's EXT-X-PROGRAM-DATE-TIME: hls.js hands it over with FRAG_CHANGED; for the native
// player the page reads the playlist itself.
(function () {
  "use strict";

  var video = document.getElementById("nvr-video");
  if (!video) {
    return;
  }
  var source = video.getAttribute("data-src");
  var startOffset = parseFloat(video.getAttribute("data-start-offset")) || 0;
  var readout = document.getElementById("nvr-wallclock");
  var errorBox = document.getElementById("nvr-player-error");
  // Fragments in playlist order: {start, duration, programDateTime (ms since the epoch)}.
  // With hls.js these are its own fragment objects, whose start it corrects as it plays.
  var fragments = [];
  var current = null;

  function showError(message) {
    if (errorBox) {
      errorBox.textContent = message;
      errorBox.hidden = false;
    }
  }

  function contains(fragment, time) {
    return fragment && time >= fragment.start - 0.05 && time < fragment.start + fragment.duration + 0.05;
  }

  function fragmentAt(time) {
    if (contains(current, time)) {
      return current;
    }
    var low = 0;
    var high = fragments.length - 1;
    var found = null;
    while (low <= high) {
      var middle = (low + high) >> 1;
      if (fragments[middle].start <= time) {
        found = fragments[middle];
        low = middle + 1;
      } else {
        high = middle - 1;
      }
    }
    return found;
  }

  function wallClockAt(time) {
    var fragment = fragmentAt(time);
    if (!fragment || typeof fragment.programDateTime !== "number") {
      return null;
    }
    return new Date(fragment.programDateTime + (time - fragment.start) * 1000);
  }

  function updateReadout() {
    var when = wallClockAt(video.currentTime);
    if (readout) {
      readout.textContent = when ? when.toLocaleString() : "—";
      readout.setAttribute("title", when ? when.toISOString() : "");
    }
  }

  function playWithHlsJs() {
    var hls = new window.Hls({ startPosition: startOffset });
    var recoveries = 0;
    hls.on(window.Hls.Events.LEVEL_LOADED, function (_event, data) {
      fragments = data.details.fragments;
    });
    hls.on(window.Hls.Events.FRAG_CHANGED, function (_event, data) {
      current = data.frag;
      updateReadout();
    });
    hls.on(window.Hls.Events.ERROR, function (_event, data) {
      if (!data.fatal) {
        return;
      }
      if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR && recoveries < 3) {
        recoveries += 1;
        hls.recoverMediaError();
      } else if (data.type === window.Hls.ErrorTypes.NETWORK_ERROR && recoveries < 3) {
        recoveries += 1;
        hls.startLoad();
      } else {
        showError("Playback stopped: " + (data.details || "unknown error") + ". Reload the page to try again.");
        hls.destroy();
      }
    });
    hls.loadSource(source);
    hls.attachMedia(video);
  }

  function playNatively() {
    video.addEventListener("loadedmetadata", function () {
      if (startOffset > 0) {
        video.currentTime = startOffset;
      }
    }, { once: true });
    video.src = source;
    fetch(source, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.text() : ""; })
      .then(function (text) {
        fragments = window.nvrHlsPlaylist.parse(text); // hls_playlist.js
        updateReadout();
      })
      .catch(function () { /* the readout stays empty; playback does not depend on it */ });
  }

  // "Now playing" buttons copy the wall-clock time of the picture into the export form.
  function wireMarks() {
    document.querySelectorAll("[data-mark]").forEach(function (button) {
      var input = document.getElementById(button.getAttribute("data-mark"));
      if (!input || !window.nvrRecordings) {
        return;
      }
      button.hidden = false;
      button.addEventListener("click", function () {
        var when = wallClockAt(video.currentTime);
        if (when) {
          input.value = window.nvrRecordings.localInputValue(when);
        }
      });
    });
  }

  video.addEventListener("timeupdate", updateReadout);
  video.addEventListener("seeked", updateReadout);
  wireMarks();
  if (window.Hls && window.Hls.isSupported()) {
    playWithHlsJs();
  } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
    playNatively();
  } else {
    showError("This browser can play neither HLS nor Media Source Extensions video.");
  }
})();
