// Recordings pages: the browser's time zone in forms and links, local times in datetime-local
// fields, clicks on the day timeline, and thumbnails that fail to load. No inline script: the
// pages carry data-* attributes and this file acts on them.
(function () {
  "use strict";

  function browserTimeZone() {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (e) {
      return "";
    }
  }

  function pad(number) {
    return (number < 10 ? "0" : "") + number;
  }

  // The value a datetime-local field shows for a Date, in the browser's time zone.
  function localInputValue(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate()) +
      "T" + pad(date.getHours()) + ":" + pad(date.getMinutes()) + ":" + pad(date.getSeconds());
  }

  // Forms send the zone their naive datetime-local values are in (the server reads them in it).
  function fillTimeZones(zone) {
    document.querySelectorAll("input[data-tz]").forEach(function (input) {
      if (!input.value) {
        input.value = zone;
      }
    });
    // The zone a form's times are read in: the one it will send.
    document.querySelectorAll("[data-tz-name]").forEach(function (el) {
      var form = el.closest("form");
      var field = form ? form.querySelector("input[data-tz]") : null;
      el.textContent = (field && field.value) || zone;
    });
  }

  // Fields rendered from a UTC instant (data-iso) show it in local time, when their form
  // will send the browser's zone along.
  function localizeInputs(zone) {
    document.querySelectorAll("input[data-iso]").forEach(function (input) {
      var tzField = input.form ? input.form.querySelector("input[data-tz]") : null;
      var when = new Date(input.getAttribute("data-iso"));
      if (tzField && tzField.value === zone && !isNaN(when.getTime())) {
        input.value = localInputValue(when);
      }
    });
  }

  function withZone(href, zone) {
    var url = new URL(href, window.location.href);
    if (!url.searchParams.has("tz")) {
      url.searchParams.set("tz", zone);
    }
    return url.pathname + url.search + url.hash;
  }

  function addZoneToLinks(zone) {
    document.querySelectorAll("a[data-tz-link]").forEach(function (link) {
      link.setAttribute("href", withZone(link.getAttribute("href"), zone));
    });
  }

  // The day timeline was drawn in UTC (no tz in the URL): draw it again in the browser's zone.
  function reloadInZone(zone) {
    if (document.querySelector("[data-tz-reload]") && zone && zone !== "UTC") {
      window.location.replace(withZone(window.location.href, zone));
      return true;
    }
    return false;
  }

  // A click anywhere on the timeline plays from that moment.
  function wireTimelines() {
    document.querySelectorAll("svg.nvr-timeline[data-day-start]").forEach(function (svg) {
      var dayStart = new Date(svg.getAttribute("data-day-start")).getTime();
      var span = parseFloat(svg.getAttribute("data-span"));
      var playUrl = svg.getAttribute("data-play-url");
      svg.addEventListener("click", function (event) {
        var box = svg.getBoundingClientRect();
        if (!box.width || isNaN(dayStart) || !span) {
          return;
        }
        event.preventDefault();
        var fraction = Math.min(Math.max((event.clientX - box.left) / box.width, 0), 1);
        var url = new URL(playUrl, window.location.href);
        url.searchParams.set("start", new Date(dayStart + fraction * span * 1000).toISOString());
        window.location.assign(url.pathname + url.search);
      });
    });
  }

  // A recording whose picture cannot be decoded keeps its place but shows no broken image.
  function wireThumbnails() {
    document.querySelectorAll("img[data-thumb]").forEach(function (img) {
      function hide() {
        img.classList.add("nvr-thumb-missing");
      }
      img.addEventListener("error", hide);
    });
  }

  window.nvrRecordings = { localInputValue: localInputValue, browserTimeZone: browserTimeZone };

  document.addEventListener("DOMContentLoaded", function () {
    var zone = browserTimeZone();
    if (zone && reloadInZone(zone)) {
      return;
    }
    if (zone) {
      fillTimeZones(zone);
      localizeInputs(zone);
      addZoneToLinks(zone);
    }
    wireTimelines();
    wireThumbnails();
  });
})();
