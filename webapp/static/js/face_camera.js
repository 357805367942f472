// Face sign-in's camera: the login page takes one picture and posts it; the account page takes
// three and posts them with the password. Pictures are JPEG 0.9 from a canvas, never kept here.
(function () {
  "use strict";

  var WIDTH = 640;

  function cameraPossible() {
    // getUserMedia exists only in a secure context: HTTPS, or localhost / 127.0.0.1.
    return window.isSecureContext && navigator.mediaDevices && navigator.mediaDevices.getUserMedia;
  }

  function startCamera(video) {
    return navigator.mediaDevices.getUserMedia({ video: { width: WIDTH }, audio: false })
      .then(function (stream) {
        video.srcObject = stream;
        return video.play();
      });
  }

  function takePicture(video) {
    var canvas = document.createElement("canvas");
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext("2d").drawImage(video, 0, 0);
    return new Promise(function (resolve, reject) {
      canvas.toBlob(function (blob) {
        if (blob) { resolve(blob); } else { reject(new Error("The camera gave no picture.")); }
      }, "image/jpeg", 0.9);
    });
  }

  function problemText(error) {
    if (error && error.status === 413) { return "The picture is too large."; }
    if (error && error.name === "NotAllowedError") {
      return "The browser was not allowed to use the camera: allow it, then reload the page.";
    }
    if (error && error.name === "NotFoundError") { return "This device has no camera."; }
    return (error && error.message) || "Something went wrong. Please try again.";
  }

  function say(root, text, kind) {
    var status = root.querySelector("[data-face-status]");
    status.textContent = text;
    status.className = "mt-2 small " + (kind === "error" ? "text-danger-emphasis" : "text-body-secondary");
  }

  function post(url, form) {
    return window.nvr.fetchJSON(url, { method: "POST", body: form });
  }

  function wireLogin(root, video) {
    var take = root.querySelector("[data-face-take]");
    take.addEventListener("click", function () {
      take.disabled = true;
      say(root, "Checking…");
      takePicture(video).then(function (blob) {
        var form = new FormData();
        form.append("photo", blob, "face.jpg");
        return post(root.dataset.post, form);
      }).then(function (answer) {
        say(root, "Welcome!");
        window.location.assign(answer.next);
      }).catch(function (error) {
        if (error.body && error.body.login) {
          window.location.assign(error.body.login);
          return;
        }
        say(root, problemText(error), "error");
        take.disabled = false;
      });
    });
    take.disabled = false;
  }

  function wireEnroll(root, video) {
    var take = root.querySelector("[data-face-take]");
    var again = root.querySelector("[data-face-again]");
    var form = root.querySelector("form[data-face-enroll]");
    var submit = form.querySelector("[type=submit]");
    var shots = Array.prototype.slice.call(root.querySelectorAll("[data-face-shot]"));
    var blobs = [];

    function update() {
      take.disabled = blobs.length >= shots.length;
      take.textContent = blobs.length >= shots.length ? "All pictures taken"
        : "Take picture " + (blobs.length + 1) + " of " + shots.length;
      submit.disabled = blobs.length < shots.length;
    }

    take.addEventListener("click", function () {
      take.disabled = true;
      takePicture(video).then(function (blob) {
        var shot = shots[blobs.length];
        blobs.push(blob);
        shot.src = URL.createObjectURL(blob);
        shot.alt = "Picture " + blobs.length;
        say(root, blobs.length < shots.length ? "Turn your head a little for the next one." :
          "Enter your password and turn face sign-in on.");
        update();
      }).catch(function (error) { say(root, problemText(error), "error"); update(); });
    });
    again.addEventListener("click", function () {
      blobs = [];
      shots.forEach(function (shot) { shot.removeAttribute("src"); shot.alt = ""; });
      say(root, "");
      update();
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = new FormData(form);
      blobs.forEach(function (blob, i) { data.append("photo", blob, "face-" + (i + 1) + ".jpg"); });
      submit.disabled = true;
      say(root, "Checking the pictures…");
      post(form.action, data).then(function (answer) {
        window.location.assign(answer.next);
      }).catch(function (error) {
        say(root, problemText(error), "error");
        update();
      });
    });
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.querySelector("[data-face-camera]");
    if (!root) { return; }
    if (!cameraPossible()) {
      root.querySelector("[data-face-insecure]").classList.remove("d-none");
      say(root, "");
      return;
    }
    var video = root.querySelector("video");
    startCamera(video).then(function () {
      root.querySelector("[data-face-ready]").classList.remove("d-none");
      say(root, root.dataset.mode === "login" ? "Look into the camera, then press the button." :
        "Look into the camera and take the first picture.");
      if (root.dataset.mode === "login") { wireLogin(root, video); } else { wireEnroll(root, video); }
    }).catch(function (error) { say(root, problemText(error), "error"); });
  });
})();
