// The People page: the alert switch saves itself, "Delete" opens its confirm dialog, and the
// "This is..." form asks for a new name only when "A new person" is chosen.
(function () {
  "use strict";

  document.querySelectorAll("form[data-autosubmit]").forEach(function (form) {
    form.addEventListener("change", function () {
      form.requestSubmit();
    });
  });

  document.querySelectorAll("[data-open-dialog]").forEach(function (button) {
    var dialog = document.getElementById(button.getAttribute("data-open-dialog"));
    if (!dialog || typeof dialog.showModal !== "function") return;
    button.addEventListener("click", function () {
      dialog.showModal();
    });
  });

  document.querySelectorAll("form[data-name-face]").forEach(function (form) {
    var choice = form.querySelector("select[name=person]");
    var name = form.querySelector("input[name=name]");
    var label = name ? form.querySelector('label[for="' + name.id + '"]') : null;
    function update() {
      var isNew = choice.value === "new";
      name.hidden = !isNew;
      name.required = isNew;
      if (label) label.hidden = !isNew;
    }
    if (choice && name) {
      choice.addEventListener("change", update);
      update();
    }
  });
})();
