// The query form's small helpers. Without script the form works as plain HTML: "Show
// another image" then submits the form, which comes back with what was typed and a new
// image; the spoken code is then a file to open.
(function () {
  "use strict";

  // After a failed submit the error summary takes the focus (autofocus does it too, where
  // the browser honours it on a non-field element).
  var summary = document.querySelector(".error-summary");
  if (summary) {
    summary.focus();
  }

  var row = document.querySelector("[data-captcha]");
  if (!row) {
    return;
  }
  var button = row.querySelector(".refresh");
  var image = row.querySelector("img");
  var key = row.querySelector("input[type=hidden]");
  var answer = row.querySelector("input[type=text]");
  var audio = row.querySelector(".audio");
  var status = row.querySelector("[data-captcha-status]");

  // Another image in place: the address and dates stay as typed.
  button.type = "button";
  button.addEventListener("click", function () {
    fetch(row.dataset.refreshUrl, {
      headers: { "X-Requested-With": "XMLHttpRequest" },
      credentials: "same-origin",
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (data) {
        image.src = data.image_url;
        key.value = data.key;
        answer.value = "";
        if (audio && data.audio_url) {
          audio.href = data.audio_url;
        }
        status.textContent = row.dataset.refreshed;
        answer.focus();
      })
      .catch(function () {
        // The refresh did not answer: ask the server the script-less way.
        button.type = "submit";
        button.form.requestSubmit(button);
      });
  });

  // The spoken code plays on the page instead of being downloaded.
  if (audio) {
    audio.addEventListener("click", function (event) {
      event.preventDefault();
      new Audio(audio.href).play().catch(function () {
        window.location.href = audio.href;
      });
    });
  }
})();
