// The timeline page: every camera on one canvas time axis, moved like a map (drag pans, the
// wheel zooms around the pointer, from 24 h down to 1 minute), with footage, gaps and their
// reasons, back-filled spans, motion density bars, event markers and a dot per face seen. Hovering shows the
// picture of that moment; a click plays every chosen camera from there (sync_players.js).
// Data comes from GET /api/v1/timeline for the visible range and as much again around it.
(function () {
  "use strict";

  var root = document.getElementById("nvr-tl");
  if (!root) {
    return;
  }
  var canvas = document.getElementById("nvr-tl-canvas");
  var tip = document.getElementById("nvr-tl-tip");
  var tipImg = document.getElementById("nvr-tl-tip-img");
  var tipText = document.getElementById("nvr-tl-tip-text");
  var rangeText = document.getElementById("nvr-tl-range");
  var clockText = document.getElementById("nvr-tl-clock");
  var rateText = document.getElementById("nvr-tl-rate");
  var playButton = document.getElementById("nvr-tl-play");
  var ctx = canvas.getContext("2d");

  var MIN_SPAN = 60 * 1000;
  var FACE_PREROLL = 2000; // as the events' "play" links (nvrlib/motion_schedule.py PLAY_PREROLL)
  var MAX_SPAN = 24 * 3600 * 1000;
  var AXIS = 22;
  var ROW = 30;
  var STEP_MS = 10 * 1000;
  var RATES = [1, 2, 4, 8];
  var TICKS = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 6 * 3600].map(function (s) { return s * 1000; });

  var serverNow = Date.parse(root.getAttribute("data-now")) || Date.now();
  var skew = serverNow - Date.now(); // the server's clock decides what "now" is
  function now() { return Date.now() + skew; }

  var at = Date.parse(root.getAttribute("data-at"));
  var view = { start: 0, end: 0 };
  var first = Date.parse(root.getAttribute("data-first"));
  if (isNaN(at)) {
    view.end = now() + 5 * 60 * 1000;
    view.start = view.end - 3600 * 1000;
    if (!isNaN(first) && first > view.start) {
      // a new system: open on the footage there is, not on an empty hour
      var margin = Math.max(60 * 1000, (now() - first) * 0.15);
      view.start = first - margin;
      view.end = now() + margin;
    }
  } else {
    view.start = at - 30 * 60 * 1000;
    view.end = at + 30 * 60 * 1000;
  }
  var data = null; // {start, end, resolution, cameras: [...]}, times in ms
  var fetched = null;
  var fetchTimer = null;
  var hover = null;
  var pictureTimer = null;

  var players = new window.NvrSyncPlayers(document.getElementById("nvr-grid"),
    document.getElementById("nvr-tile-template"), root.getAttribute("data-playlist"));

  // --- data -----------------------------------------------------------------------------

  function ms(text) { return text ? Date.parse(text) : null; }

  function parse(json) {
    return {
      start: ms(json.start), end: ms(json.end), now: ms(json.now), resolution: json.resolution * 1000,
      cameras: json.cameras.map(function (row) {
        return {
          name: row.camera, live: row.live,
          footage: row.footage.map(function (s) { return { start: ms(s.start), end: ms(s.end), live: s.live }; }),
          backfilled: row.backfilled.map(function (s) { return { start: ms(s.start), end: ms(s.end) }; }),
          gaps: row.gaps.map(function (g) { return { start: ms(g.start), end: ms(g.end), reason: g.reason_text }; }),
          counts: row.motion.counts,
          events: row.motion.events.map(function (e) { return { start: ms(e.start), end: ms(e.end), score: e.score }; }),
          faces: (row.faces || []).map(function (f) { return { time: ms(f.time), person: f.person, id: f.person_id }; })
        };
      })
    };
  }

  function load() {
    var span = view.end - view.start;
    var start = Math.floor(view.start - span / 2);
    var end = Math.ceil(view.end + span / 2);
    if (end - start > MAX_SPAN) {
      start = view.start;
      end = Math.min(view.end, start + MAX_SPAN);
    }
    var buckets = Math.max(50, plotWidth() / 3);
    var resolution = Math.max(1, Math.ceil(span / 1000 / buckets));
    var url = root.getAttribute("data-api") + "?start=" + encodeURIComponent(new Date(start).toISOString()) +
      "&end=" + encodeURIComponent(new Date(end).toISOString()) + "&resolution=" + resolution;
    fetched = { start: start, end: end, resolution: resolution };
    fetch(url, { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (json) {
        if (json) {
          data = parse(json);
          root.setAttribute("data-loaded", String(Date.now()));
          draw();
        }
      })
      .catch(function () { /* keep the last data; the next move tries again */ });
  }

  function scheduleLoad() {
    var span = view.end - view.start;
    var resolution = Math.max(1, Math.ceil(span / 1000 / Math.max(50, plotWidth() / 3)));
    if (fetched && view.start >= fetched.start && view.end <= fetched.end &&
        resolution >= fetched.resolution && resolution <= fetched.resolution * 2) {
      return;
    }
    window.clearTimeout(fetchTimer);
    fetchTimer = window.setTimeout(load, 150);
  }

  // --- geometry -------------------------------------------------------------------------

  function labelWidth() { return Math.min(120, Math.round(canvas.clientWidth * 0.22)); }
  function plotWidth() { return Math.max(10, canvas.clientWidth - labelWidth()); }
  function xOf(time) { return labelWidth() + (time - view.start) / (view.end - view.start) * plotWidth(); }
  function timeAt(x) { return view.start + (x - labelWidth()) / plotWidth() * (view.end - view.start); }
  function cameraNames() { return data ? data.cameras.map(function (c) { return c.name; }) : []; }

  function resize() {
    var rows = Math.max(1, data ? data.cameras.length : document.querySelectorAll("[data-tl-camera]").length);
    var height = AXIS + rows * ROW + 4;
    var ratio = window.devicePixelRatio || 1;
    canvas.style.height = height + "px"; // CSSOM, not an inline style attribute: the CSP allows it
    canvas.width = Math.round(canvas.clientWidth * ratio);
    canvas.height = Math.round(height * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  }

  // --- drawing --------------------------------------------------------------------------

  function color(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  function label(time, step) {
    var d = new Date(time);
    var text = pad(d.getHours()) + ":" + pad(d.getMinutes());
    if (step < 60 * 1000) {
      text += ":" + pad(d.getSeconds());
    }
    if (d.getHours() === 0 && d.getMinutes() === 0 && d.getSeconds() === 0) {
      text = d.toLocaleDateString();
    }
    return text;
  }

  function drawAxis(colors, height) {
    var span = view.end - view.start;
    var step = TICKS[TICKS.length - 1];
    for (var i = 0; i < TICKS.length; i += 1) {
      if (TICKS[i] / span * plotWidth() >= 70) {
        step = TICKS[i];
        break;
      }
    }
    var offset = new Date(view.start).getTimezoneOffset() * 60 * 1000;
    var first = Math.ceil((view.start - offset) / step) * step + offset;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    for (var t = first; t <= view.end; t += step) {
      var x = Math.round(xOf(t)) + 0.5;
      ctx.strokeStyle = colors.grid;
      ctx.beginPath();
      ctx.moveTo(x, AXIS - 4);
      ctx.lineTo(x, height);
      ctx.stroke();
      ctx.fillStyle = colors.text;
      ctx.fillText(label(t, step), x + 3, AXIS / 2);
    }
  }

  function fillSpan(start, end, y, h, style) {
    var x0 = Math.max(labelWidth(), xOf(start));
    var x1 = Math.min(labelWidth() + plotWidth(), xOf(end));
    if (x1 <= labelWidth() || x0 >= labelWidth() + plotWidth()) {
      return;
    }
    ctx.fillStyle = style;
    ctx.fillRect(x0, y, Math.max(1, x1 - x0), h);
  }

  function drawRow(camera, index, colors) {
    var y = AXIS + index * ROW;
    var h = ROW - 8;
    camera.gaps.forEach(function (gap) { fillSpan(gap.start, gap.end, y + 2, h, colors.gap); });
    camera.footage.forEach(function (span) { fillSpan(span.start, span.end, y + 2, h, colors.footage); });
    camera.backfilled.forEach(function (span) { fillSpan(span.start, span.end, y + 2, h, colors.backfilled); });
    var max = Math.max.apply(null, [1].concat(camera.counts));
    camera.counts.forEach(function (count, bucket) {
      if (count) {
        var start = data.start + bucket * data.resolution;
        var barHeight = Math.max(3, Math.round(count / max * (h - 6)));
        fillSpan(start, start + data.resolution, y + 2 + h - barHeight, barHeight, colors.motion);
      }
    });
    ctx.fillStyle = colors.marker;
    camera.events.forEach(function (event) {
      var x = xOf(event.start);
      if (x >= labelWidth() && x <= labelWidth() + plotWidth()) {
        ctx.beginPath();
        ctx.moveTo(x - 4, y);
        ctx.lineTo(x + 4, y);
        ctx.lineTo(x, y + 6);
        ctx.fill();
      }
    });
    drawFaces(camera, y, colors);
    ctx.fillStyle = colors.text;
    ctx.font = "12px system-ui, sans-serif";
    ctx.textBaseline = "middle";
    var name = camera.name;
    while (name.length > 3 && ctx.measureText(name).width > labelWidth() - 8) {
      name = name.slice(0, -2) + "…";
    }
    ctx.fillText(name, 4, y + 2 + h / 2);
  }

  // The people lane: a dot per face sighting along the top of the row, a colour per person
  // (from their id), grey with "?" for an unknown face.
  var FACE_RADIUS = 5;
  function personColor(id) { return "hsl(" + ((id * 137) % 360) + ", 65%, 45%)"; }

  function drawFaces(camera, y, colors) {
    var cy = y + 2 + FACE_RADIUS;
    ctx.font = "bold 8px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    camera.faces.forEach(function (face) {
      var x = xOf(face.time);
      if (x < labelWidth() || x > labelWidth() + plotWidth()) {
        return;
      }
      ctx.beginPath();
      ctx.arc(x, cy, FACE_RADIUS, 0, 2 * Math.PI);
      ctx.fillStyle = face.id === null ? colors.unknownFace : personColor(face.id);
      ctx.fill();
      ctx.strokeStyle = colors.faceRing;
      ctx.stroke();
      if (face.id === null) {
        ctx.fillStyle = "#fff";
        ctx.fillText("?", x, cy + 0.5);
      }
    });
    ctx.textAlign = "start";
  }

  function faceAt(camera, x, y, index) {
    var top = AXIS + index * ROW + 2;
    if (y > top + 2 * FACE_RADIUS + 3) {
      return null;
    }
    var best = null;
    camera.faces.forEach(function (face) {
      var gap = Math.abs(xOf(face.time) - x);
      if (gap <= FACE_RADIUS + 2 && (!best || gap < best.gap)) {
        best = { face: face, gap: gap };
      }
    });
    return best ? best.face : null;
  }

  function drawCursor(time, style, width) {
    if (time === null || time < view.start || time > view.end) {
      return;
    }
    var x = Math.round(xOf(time)) + 0.5;
    ctx.strokeStyle = style;
    ctx.lineWidth = width;
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, canvas.clientHeight);
    ctx.stroke();
    ctx.lineWidth = 1;
  }

  function draw() {
    resize();
    var colors = {
      text: color("--bs-body-color", "#222"), grid: color("--bs-border-color", "#ccc"),
      empty: color("--bs-secondary-bg", "#eee"), gap: color("--bs-danger-border-subtle", "#f1aeb5"),
      footage: color("--bs-success", "#198754"), backfilled: color("--bs-info", "#0dcaf0"),
      motion: color("--bs-warning", "#ffc107"), marker: color("--bs-warning-text-emphasis", "#997404"),
      playhead: color("--bs-primary", "#0d6efd"), hover: color("--bs-secondary-color", "#666"),
      unknownFace: color("--bs-secondary", "#6c757d"), faceRing: color("--bs-body-bg", "#fff")
    };
    var height = canvas.clientHeight;
    ctx.clearRect(0, 0, canvas.clientWidth, height);
    ctx.fillStyle = colors.empty;
    ctx.fillRect(labelWidth(), AXIS, plotWidth(), height - AXIS);
    drawAxis(colors, height);
    if (data) {
      data.cameras.forEach(function (camera, index) { drawRow(camera, index, colors); });
    }
    drawCursor(now(), colors.hover, 1);
    if (hover) {
      drawCursor(hover.time, colors.hover, 1);
    }
    drawCursor(players.wall, colors.playhead, 2);
    canvas.setAttribute("data-view-start", new Date(view.start).toISOString());
    canvas.setAttribute("data-view-end", new Date(view.end).toISOString());
    rangeText.textContent = new Date(view.start).toLocaleString() + " – " + new Date(view.end).toLocaleString();
    updateExportLinks();
  }

  // --- moving the view ------------------------------------------------------------------

  function setView(start, end) {
    var span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, end - start));
    var middle = (start + end) / 2;
    if (end - start !== span) {
      start = middle - span / 2;
    }
    view.start = start;
    view.end = start + span;
    draw();
    scheduleLoad();
  }

  function zoom(factor, around) {
    var pivot = around === undefined ? (view.start + view.end) / 2 : around;
    var span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, (view.end - view.start) * factor));
    var share = (pivot - view.start) / (view.end - view.start);
    setView(pivot - share * span, pivot - share * span + span);
  }

  canvas.addEventListener("wheel", function (event) {
    event.preventDefault();
    var rect = canvas.getBoundingClientRect();
    var delta = event.deltaMode === 1 ? event.deltaY * 30 : event.deltaY;
    zoom(Math.exp(delta * 0.002), timeAt(event.clientX - rect.left));
  }, { passive: false });

  var drag = null;
  canvas.addEventListener("pointerdown", function (event) {
    canvas.setPointerCapture(event.pointerId);
    drag = { x: event.clientX, start: view.start, end: view.end, moved: false };
  });

  canvas.addEventListener("pointermove", function (event) {
    var rect = canvas.getBoundingClientRect();
    if (drag) {
      var dx = event.clientX - drag.x;
      if (Math.abs(dx) > 4) {
        drag.moved = true;
      }
      if (drag.moved) {
        var shift = dx / plotWidth() * (drag.end - drag.start);
        setView(drag.start - shift, drag.end - shift);
        hideTip();
        return;
      }
    }
    showTip(event.clientX - rect.left, event.clientY - rect.top);
  });

  canvas.addEventListener("pointerup", function (event) {
    var rect = canvas.getBoundingClientRect();
    var wasClick = drag && !drag.moved;
    drag = null;
    var x = event.clientX - rect.left;
    if (wasClick && x >= labelWidth()) {
      var y = event.clientY - rect.top;
      var index = Math.floor((y - AXIS) / ROW);
      var face = data && index >= 0 && index < data.cameras.length ?
        faceAt(data.cameras[index], x, y, index) : null;
      playFrom(face ? face.time - FACE_PREROLL : timeAt(x)); // a face plays from just before it
    }
  });

  canvas.addEventListener("pointerleave", function () {
    if (!drag) {
      hideTip();
    }
  });

  // --- hover: what is there, and its picture --------------------------------------------

  function within(list, time) {
    for (var i = 0; i < list.length; i += 1) {
      if (time >= list[i].start && time < list[i].end) {
        return list[i];
      }
    }
    return null;
  }

  function describe(camera, time) {
    if (within(camera.backfilled, time)) {
      return { text: "back-filled footage", footage: true };
    }
    var span = within(camera.footage, time);
    if (span) {
      return { text: span.live && time > span.end - 30000 ? "footage (being recorded)" : "footage", footage: true };
    }
    var gap = within(camera.gaps, time);
    if (gap) {
      return { text: "gap" + (gap.reason ? ": " + gap.reason : " (no reason recorded)"), footage: false };
    }
    return { text: time > now() ? "the future" : "no footage", footage: false };
  }

  function showTip(x, y) {
    var index = Math.floor((y - AXIS) / ROW);
    if (!data || x < labelWidth() || index < 0 || index >= data.cameras.length) {
      hideTip();
      return;
    }
    var camera = data.cameras[index];
    var time = timeAt(x);
    var what = describe(camera, time);
    var motion = within(camera.events.map(function (e) { return { start: e.start, end: e.end || now() }; }), time);
    var face = faceAt(camera, x, y, index);
    hover = { time: time, camera: camera.name };
    tipText.textContent = camera.name + " · " + new Date(time).toLocaleString() + " · " + what.text +
      (motion ? " · motion" : "") +
      (face ? " · " + (face.person || "unknown face") + " at " + new Date(face.time).toLocaleTimeString() : "");
    tip.hidden = false;
    var left = Math.min(Math.max(0, x + 12), canvas.clientWidth - tip.offsetWidth);
    tip.style.left = left + "px"; // CSSOM: allowed by the CSP
    tip.style.top = (AXIS + (index + 1) * ROW) + "px";
    window.clearTimeout(pictureTimer);
    if (what.footage) {
      pictureTimer = window.setTimeout(function () { showPicture(camera.name, time); }, 120);
    } else {
      tipImg.hidden = true;
    }
    draw();
  }

  function showPicture(camera, time) {
    // Rounded to 2 s: moving the pointer a little asks for the same (cached) picture.
    var rounded = Math.floor(time / 2000) * 2000;
    var src = root.getAttribute("data-picture").replace("CAMERA", encodeURIComponent(camera)) +
      "?at=" + encodeURIComponent(new Date(rounded).toISOString());
    tipImg.alt = "Picture of " + camera + " near " + new Date(rounded).toLocaleString();
    tipImg.onload = function () { tipImg.hidden = false; };
    tipImg.onerror = function () { tipImg.hidden = true; };
    if (tipImg.getAttribute("src") !== src) {
      tipImg.src = src;
    }
  }

  function hideTip() {
    tip.hidden = true;
    hover = null;
    window.clearTimeout(pictureTimer);
    draw();
  }

  // --- playing --------------------------------------------------------------------------

  function chosenCameras() {
    var max = parseInt(document.getElementById("nvr-grid").getAttribute("data-max"), 10) || 9;
    var boxes = Array.prototype.slice.call(document.querySelectorAll("[data-tl-camera]"));
    var chosen = boxes.filter(function (box) { return box.checked; }).map(function (box) { return box.value; });
    boxes.forEach(function (box) { box.disabled = !box.checked && chosen.length >= max; });
    return chosen.slice(0, max);
  }

  function playFrom(time) {
    root.setAttribute("data-clicked", new Date(time).toISOString());
    players.seek(time);
    players.play();
    updateTransport();
  }

  function updateTransport() {
    playButton.textContent = players.playing ? "Pause" : "Play";
    rateText.textContent = players.rate + "×";
  }

  players.onTick(function (p) {
    clockText.textContent = p.wall === null ? "—" : new Date(p.wall).toLocaleString();
    clockText.setAttribute("data-wall", p.wall === null ? "" : new Date(p.wall).toISOString());
    if (p.wall !== null && p.playing && p.wall > view.end - (view.end - view.start) * 0.05) {
      var span = view.end - view.start;
      setView(p.wall - span * 0.2, p.wall + span * 0.8); // follow the playhead off the edge
    } else {
      draw();
    }
  });

  playButton.addEventListener("click", function () {
    if (players.wall === null) {
      playFrom(Math.min(now() - 60 * 1000, (view.start + view.end) / 2));
      return;
    }
    players.toggle();
    updateTransport();
  });

  document.querySelectorAll("[data-tl-camera]").forEach(function (box) {
    box.addEventListener("change", function () { players.setCameras(chosenCameras()); });
  });

  function step(ms) {
    var base = players.wall === null ? (view.start + view.end) / 2 : players.wall;
    players.seek(base + ms);
  }

  function faster() {
    var index = RATES.indexOf(players.rate);
    if (!players.playing) {
      players.play();
    } else if (index < RATES.length - 1) {
      players.setRate(RATES[index + 1]);
    }
  }

  function slower() {
    var index = RATES.indexOf(players.rate);
    if (index > 0) {
      players.setRate(RATES[index - 1]);
    } else {
      step(-STEP_MS); // browsers cannot play backwards: J at 1× steps back instead
    }
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey ||
        (target && (target.isContentEditable || /^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(target.tagName) && target.type !== "checkbox"))) {
      return;
    }
    var handled = true;
    switch (event.key) {
      case " ": players.toggle(); break;
      case "ArrowLeft": step(event.shiftKey ? -60000 : -STEP_MS); break;
      case "ArrowRight": step(event.shiftKey ? 60000 : STEP_MS); break;
      case "j": case "J": slower(); break;
      case "k": case "K": players.pause(); break;
      case "l": case "L": faster(); break;
      case "+": case "=": zoom(0.5); break;
      case "-": case "_": zoom(2); break;
      default: handled = false;
    }
    if (handled) {
      event.preventDefault();
      updateTransport();
    }
  });

  document.querySelectorAll("[data-tl-zoom]").forEach(function (button) {
    button.addEventListener("click", function () {
      zoom(button.getAttribute("data-tl-zoom") === "in" ? 0.5 : 2, players.wall !== null &&
        players.wall > view.start && players.wall < view.end ? players.wall : undefined);
    });
  });

  document.querySelector("[data-tl-now]").addEventListener("click", function () {
    var span = view.end - view.start;
    setView(now() - span * 0.9, now() + span * 0.1);
  });

  // --- exports --------------------------------------------------------------------------

  var fromField = document.getElementById("tl-from");
  var toField = document.getElementById("tl-to");
  var zipLink = document.getElementById("tl-export-zip");
  var lapseLink = document.getElementById("tl-timelapse");
  var fieldsTouched = false;

  function localValue(time) {
    var d = new Date(time);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
  }

  function zone() {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC"; } catch (e) { return "UTC"; }
  }

  function updateExportLinks() {
    if (!fieldsTouched) {
      fromField.value = localValue(Math.max(view.start, view.end - MAX_SPAN));
      toField.value = localValue(Math.min(view.end, now()));
    }
    var range = "start=" + encodeURIComponent(fromField.value) + "&end=" + encodeURIComponent(toField.value) +
      "&tz=" + encodeURIComponent(zone());
    var cameras = chosenCameras();
    zipLink.href = zipLink.getAttribute("data-href") + "?cameras=" + encodeURIComponent(cameras.join(",")) + "&" + range;
    var first = cameras[0] || (cameraNames()[0] || "");
    lapseLink.href = lapseLink.getAttribute("data-href").replace("CAMERA", encodeURIComponent(first)) + "?" + range;
  }

  [fromField, toField].forEach(function (field) {
    field.addEventListener("change", function () { fieldsTouched = true; updateExportLinks(); });
  });

  window.addEventListener("resize", draw);
  var themeObserver = new MutationObserver(draw);
  themeObserver.observe(document.documentElement, { attributes: true, attributeFilter: ["data-bs-theme"] });
  window.setInterval(function () {
    if (view.end > now() - 60 * 1000) {
      fetched = null; // the live end grows: refresh the data near now
      scheduleLoad();
    }
  }, 15000);

  window.nvrTimeline = {
    players: players, view: view, playFrom: playFrom, setView: setView,
    xOf: xOf, timeAt: timeAt, rowHeight: ROW,
    rowTop: function (camera) { return AXIS + cameraNames().indexOf(camera) * ROW; }
  };
  players.setCameras(chosenCameras());
  updateTransport();
  draw();
  load();
})();
