// Light/dark mode (Bootstrap 5.3 data-bs-theme). Loaded in <head> so the page paints in the
// chosen theme at once; the toggle buttons are wired up in app.js.
(function () {
  "use strict";
  var KEY = "nvr-theme";

  function stored() {
    try {
      var value = window.localStorage.getItem(KEY);
      return value === "dark" || value === "light" ? value : null;
    } catch (e) {
      return null; // storage blocked (private mode): follow the system
    }
  }

  function preferred() {
    var system = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
    return stored() || (system ? "dark" : "light");
  }

  function apply(theme) {
    document.documentElement.setAttribute("data-bs-theme", theme);
  }

  function toggle() {
    var next = document.documentElement.getAttribute("data-bs-theme") === "dark" ? "light" : "dark";
    apply(next);
    try {
      window.localStorage.setItem(KEY, next);
    } catch (e) {
      // not persisted; still switched for this page
    }
    return next;
  }

  apply(preferred());
  window.nvrTheme = { apply: apply, toggle: toggle, preferred: preferred };
})();
