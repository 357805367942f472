// The control panel: asks before the buttons that stop something, and keeps each camera's
// state, uptime, rates and last segment current from GET /api/v1/cameras.
(function () {
  "use strict";

  var STATUS_EVERY_MS = 5000;

  function localTime(iso) {
    var when = new Date(iso);
    return isNaN(when.getTime()) ? String(iso) : when.toLocaleString();
  }

  function formatBitrate(bps) {
    if (bps >= 1e6) { return (bps / 1e6).toFixed(1) + " Mbit/s"; }
    if (bps >= 1e3) { return Math.round(bps / 1e3) + " kbit/s"; }
    return Math.round(bps) + " bit/s";
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // As cameras_service.human_duration: "3 d 4 h", "2 h 05 min", "7 min 30 s", "12 s".
  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) { return "–"; }
    var s = Math.floor(seconds);
    var days = Math.floor(s / 86400);
    var hours = Math.floor((s % 86400) / 3600);
    var minutes = Math.floor((s % 3600) / 60);
    var rest = s % 60;
    if (days) { return days + " d " + hours + " h"; }
    if (hours) { return hours + " h " + pad(minutes) + " min"; }
    if (minutes) { return minutes + " min " + pad(rest) + " s"; }
    return rest + " s";
  }

  function badge(camera) {
    var el = document.createElement("span");
    if (camera.stale) {
      el.className = "badge text-bg-warning";
      el.textContent = "hub silent";
    } else if (!camera.online && camera.state !== "backoff" && camera.state !== "failed" &&
               camera.enabled && camera.approval !== "rejected") {
      // as the page itself: a camera that should record and does not is offline, whatever
      // its ffmpeg's state (usually "stopped": its edge went away)
      el.className = "badge text-bg-danger";
      el.title = "It should be recording but is not (" + camera.state + ")";
      el.textContent = "offline";
    } else {
      var failing = camera.state === "backoff" || camera.state === "failed";
      el.className = "badge " + (camera.online ? "text-bg-success" : failing ? "text-bg-danger" : "text-bg-secondary");
      el.textContent = camera.state;
    }
    return el;
  }

  function setAll(row, name, text) {
    row.querySelectorAll('[data-field="' + name + '"]').forEach(function (el) { el.textContent = text; });
  }

  function update(row, camera) {
    row.querySelectorAll('[data-field="state"]').forEach(function (el) {
      el.replaceChildren(badge(camera));
    });
    setAll(row, "uptime", formatDuration(camera.uptime));
    setAll(row, "last-segment", camera.last_segment_end ? localTime(camera.last_segment_end) : "never");
    setAll(row, "fps", camera.fps.toFixed(1));
    setAll(row, "bitrate", formatBitrate(camera.bitrate));
    setAll(row, "restarts", String(camera.restarts));
    if (camera.peer !== undefined) { setAll(row, "peer", camera.peer || "–"); }
  }

  function refresh(table) {
    if (document.hidden) { return; }
    window.nvr.fetchJSON(table.getAttribute("data-status-url")).then(function (cameras) {
      var byName = {};
      cameras.forEach(function (camera) { byName[camera.name] = camera; });
      table.querySelectorAll("[data-admin-camera]").forEach(function (row) {
        var camera = byName[row.getAttribute("data-admin-camera")];
        if (camera) { update(row, camera); }
      });
    }).catch(function (error) {
      if (error.status === 401) { window.location.reload(); }
    });
  }

  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute && event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.querySelector("[data-admin-table]");
    if (table) {
      window.setInterval(function () { refresh(table); }, STATUS_EVERY_MS);
    }
  });
})();
