// Shared page behaviour: the CSRF-aware fetchJSON helper, the theme toggle, local times.
(function () {
  "use strict";

  var UNSAFE = { POST: true, PUT: true, PATCH: true, DELETE: true };

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  // fetch() for the JSON API: sends cookies, adds X-CSRFToken to unsafe methods, encodes a
  // plain-object body as JSON, and rejects with an Error carrying .status and .body on non-2xx.
  function fetchJSON(url, options) {
    var opts = Object.assign({ credentials: "same-origin" }, options || {});
    var method = (opts.method || "GET").toUpperCase();
    var headers = new Headers(opts.headers || {});
    headers.set("Accept", "application/json");
    if (UNSAFE[method]) {
      headers.set("X-CSRFToken", csrfToken());
    }
    var body = opts.body;
    if (body !== undefined && body !== null && typeof body === "object" &&
        !(body instanceof FormData) && !(body instanceof Blob) && !(body instanceof URLSearchParams)) {
      opts.body = JSON.stringify(body);
      headers.set("Content-Type", "application/json");
    }
    opts.method = method;
    opts.headers = headers;
    return fetch(url, opts).then(function (response) {
      var type = response.headers.get("Content-Type") || "";
      var parsed = type.indexOf("application/json") !== -1 ? response.json() : response.text();
      return parsed.then(function (data) {
        if (!response.ok) {
          var message = data && data.error ? data.error : response.status + " " + response.statusText;
          var error = new Error(message);
          error.status = response.status;
          error.body = data;
          throw error;
        }
        return data;
      });
    });
  }

  function wireThemeToggles() {
    document.querySelectorAll("[data-theme-toggle]").forEach(function (button) {
      button.addEventListener("click", function () {
        if (window.nvrTheme) {
          window.nvrTheme.toggle();
        }
      });
    });
  }

  // <time datetime="ISO" data-local-time>: the server writes UTC, the reader sees local time.
  function localizeTimes(root) {
    (root || document).querySelectorAll("time[data-local-time]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (!isNaN(when.getTime())) {
        el.textContent = when.toLocaleString();
        el.title = el.getAttribute("datetime");
      }
    });
  }

  window.nvr = { csrfToken: csrfToken, fetchJSON: fetchJSON, localizeTimes: localizeTimes };
  window.fetchJSON = fetchJSON;

  document.addEventListener("DOMContentLoaded", function () {
    wireThemeToggles();
    localizeTimes(document);
  });
})();
