// Reading an HLS media playlist's fragments and their wall-clock times (EXT-X-PROGRAM-DATE-TIME),
// shared by the player (player.js, for the native player) and the grid (sync_players.js).
(function () {
  "use strict";

  // Parse a media playlist into fragments {start, duration, programDateTime (ms since epoch)}.
  function parse(text) {
    var parsed = [];
    var position = 0;
    var dateTime = null;
    text.split(/\r?\n/).forEach(function (line) {
      if (line.indexOf("#EXT-X-PROGRAM-DATE-TIME:") === 0) {
        dateTime = Date.parse(line.slice(25));
      } else if (line.indexOf("#EXTINF:") === 0) {
        var duration = parseFloat(line.slice(8));
        parsed.push({ start: position, duration: duration, programDateTime: dateTime });
        position += duration;
        dateTime = null;
      }
    });
    // A fragment without its own date continues the one before it.
    for (var i = 1; i < parsed.length; i += 1) {
      if (parsed[i].programDateTime === null && typeof parsed[i - 1].programDateTime === "number") {
        parsed[i].programDateTime = parsed[i - 1].programDateTime + parsed[i - 1].duration * 1000;
      }
    }
    return parsed;
  }

  window.nvrHlsPlaylist = { parse: parse };
})();
