// The motion settings page: mask zones drawn on the camera's picture, and the sensitivity readout.
// Zones are kept as [[x, y], ...] in 0..1 of the frame (what the server checks and stores) in the
// form's hidden "mask" field, so the page works as a plain form submit.
(function () {
  "use strict";
  var editor = document.querySelector("[data-mask-editor]");
  if (!editor) return;
  var input = document.querySelector("[data-mask-input]");
  var canvas = editor.querySelector("[data-mask-canvas]");
  var picture = editor.querySelector("[data-mask-picture]");
  var list = document.querySelector("[data-mask-list]");
  var empty = document.querySelector("[data-mask-empty]");
  var closeButton = document.querySelector("[data-mask-close]");
  var undoButton = document.querySelector("[data-mask-undo]");
  var context = canvas.getContext("2d");
  var zones = [];
  var current = []; // the corners of the zone being drawn

  try {
    var stored = JSON.parse(input.value || "[]");
    if (Array.isArray(stored)) zones = stored;
  } catch (error) {
    zones = []; // a refused form sent back text that is not JSON: start over, the error says why
  }

  function round(value) {
    return Math.round(Math.min(1, Math.max(0, value)) * 10000) / 10000;
  }

  function fitCanvas() {
    // draw at the displayed size (times the pixel ratio) so lines stay sharp
    var box = picture.getBoundingClientRect();
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(box.width * ratio));
    canvas.height = Math.max(1, Math.round(box.height * ratio));
    draw();
  }

  function trace(points, closed) {
    context.beginPath();
    points.forEach(function (point, index) {
      var x = point[0] * canvas.width, y = point[1] * canvas.height;
      if (index === 0) context.moveTo(x, y); else context.lineTo(x, y);
    });
    if (closed) context.closePath();
  }

  function draw() {
    context.clearRect(0, 0, canvas.width, canvas.height);
    context.lineWidth = Math.max(2, canvas.width / 400);
    zones.forEach(function (zone) {
      trace(zone, true);
      context.fillStyle = "rgba(220, 53, 69, 0.35)";
      context.strokeStyle = "rgb(220, 53, 69)";
      context.fill();
      context.stroke();
    });
    if (current.length) {
      trace(current, false);
      context.strokeStyle = "rgb(255, 193, 7)";
      context.stroke();
      current.forEach(function (point) {
        context.fillStyle = "rgb(255, 193, 7)";
        context.fillRect(point[0] * canvas.width - 4, point[1] * canvas.height - 4, 8, 8);
      });
    }
  }

  function render() {
    input.value = JSON.stringify(zones);
    list.replaceChildren();
    zones.forEach(function (zone, index) {
      var item = document.createElement("li");
      item.className = "list-group-item d-flex align-items-center justify-content-between py-1";
      item.setAttribute("data-mask-zone", String(index + 1));
      var label = document.createElement("span");
      label.textContent = "Zone " + (index + 1) + " (" + zone.length + " corners)";
      var remove = document.createElement("button");
      remove.type = "button";
      remove.className = "btn btn-sm btn-outline-danger";
      remove.textContent = "Delete";
      remove.setAttribute("aria-label", "Delete zone " + (index + 1));
      remove.addEventListener("click", function () {
        zones.splice(index, 1);
        render();
      });
      item.append(label, remove);
      list.append(item);
    });
    empty.hidden = zones.length > 0;
    closeButton.disabled = current.length < 3;
    undoButton.disabled = current.length === 0;
    draw();
  }

  canvas.addEventListener("click", function (event) {
    var box = canvas.getBoundingClientRect();
    current.push([round((event.clientX - box.left) / box.width),
                  round((event.clientY - box.top) / box.height)]);
    render();
  });
  closeButton.addEventListener("click", function () {
    if (current.length < 3) return;
    zones.push(current);
    current = [];
    render();
  });
  undoButton.addEventListener("click", function () {
    current.pop();
    render();
  });

  var sensitivity = document.querySelector("[data-sensitivity]");
  var readout = document.querySelector("[data-sensitivity-output]");
  if (sensitivity && readout) {
    sensitivity.addEventListener("input", function () { readout.textContent = sensitivity.value; });
  }

  var form = document.querySelector("[data-motion-form]");
  if (form) {
    form.addEventListener("submit", function () {
      if (current.length >= 3) { zones.push(current); current = []; } // an unclosed zone counts
      input.value = JSON.stringify(zones);
    });
  }

  if (picture.tagName === "IMG") {
    picture.addEventListener("load", fitCanvas);
    picture.addEventListener("error", function () {
      // no picture to show (its recording is gone): a blank frame of the usual shape
      var blank = document.createElement("div");
      blank.className = "nvr-mask-blank";
      blank.textContent = "No picture could be shown: zones are placed on a blank frame.";
      picture.replaceWith(blank);
      picture = blank;
      fitCanvas();
    });
  }
  window.addEventListener("resize", fitCanvas);
  fitCanvas();
  render();
})();
