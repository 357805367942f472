// The player page's "Copy stream link": asks the API for a signed, expiring URL of the page's
// playlist (POST /api/v1/playback/<camera>/link), shows it, and copies it to the clipboard
// where the browser allows (HTTPS or localhost); elsewhere the shown link is selected for
// Ctrl+C. The link is a secret: it is never put in the page's own URL.
(function () {
  "use strict";

  var button = document.getElementById("nvr-stream-link");
  if (!button) {
    return;
  }
  var field = document.getElementById("nvr-stream-link-url");
  var status = document.getElementById("nvr-stream-link-status");

  function say(text) {
    status.textContent = text;
  }

  function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).then(
        function () { return true; },
        function () { return false; });
    }
    return Promise.resolve(false);
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    say("Making a link…");
    window.nvr.fetchJSON(button.getAttribute("data-link-url"), { method: "POST" })
      .then(function (answer) {
        field.value = answer.url;
        field.hidden = false;
        field.focus();
        field.select();
        var until = new Date(answer.expires).toLocaleString();
        return copy(answer.url).then(function (copied) {
          say((copied ? "Copied. " : "Press Ctrl+C to copy the link below. ") +
              "It plays until " + until + ".");
        });
      })
      .catch(function (error) {
        say("Could not make a link: " + error.message);
      })
      .then(function () {
        button.disabled = false;
      });
  });
})();
