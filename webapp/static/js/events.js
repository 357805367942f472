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
