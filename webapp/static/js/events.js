// The events page: a click on a motion event's snapshot shows it large in a dialog (without
// scripts the link opens the JPEG itself).
(function () {
  "use strict";
  var dialog = document.querySelector("[data-enlarged]");
  if (!dialog || typeof dialog.showModal !== "function") return;
  var image = dialog.querySelector("[data-enlarged-image]");
  document.querySelectorAll("a[data-enlarge]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      image.src = link.getAttribute("href");
      var thumbnail = link.querySelector("img");
      image.alt = thumbnail ? thumbnail.alt : "Snapshot";
      dialog.showModal();
    });
  });
  dialog.addEventListener("click", function (event) {
    if (event.target === dialog) dialog.close(); // a click on the backdrop closes it
  });
})();

// Quick ranges: "Today" and "This week" fill From with local midnight (today, or Monday) and
// clear To before the form is sent (hidden without scripts: the fields do the same by hand).
(function () {
  "use strict";
  var start = document.getElementById("e-start");
  var end = document.getElementById("e-end");
  if (!start || !end) return;
  function pad(number) {
    return (number < 10 ? "0" : "") + number;
  }
  document.querySelectorAll("[data-quick-range]").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var from = new Date();
      from.setHours(0, 0, 0, 0);
      if (button.getAttribute("data-quick-range") === "week") {
        from.setDate(from.getDate() - ((from.getDay() + 6) % 7)); // back to Monday
      }
      start.value = from.getFullYear() + "-" + pad(from.getMonth() + 1) + "-" +
        pad(from.getDate()) + "T00:00:00";
      end.value = "";
    });
  });
})();
