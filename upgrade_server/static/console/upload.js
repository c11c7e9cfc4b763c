// The publish form's upload with a progress bar: the same multipart POST the
// form sends without JavaScript, sent by XMLHttpRequest so that the bytes sent
// can be shown; the server answers JSON (the new release's address, or what
// was wrong, the form keeping everything entered).
(function () {
  "use strict";
  var form = document.getElementById("publish-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var status = document.getElementById("upload-status");
  var bar = document.getElementById("upload-progress");
  var text = document.getElementById("upload-percent");
  var errors = document.getElementById("form-errors");
  var errorText = document.getElementById("form-error-text");
  var errorFields = document.getElementById("form-error-fields");
  var button = document.getElementById("publish-button");
  var lastShown = -1;

  function show(percent) {
    bar.setAttribute("value", String(percent));
    // The live region speaks every tenth, not every event.
    var step = Math.floor(percent / 10) * 10;
    if (step !== lastShown || percent === 100) {
      lastShown = step;
      text.textContent = form.dataset.uploaded.replace("{percent}", String(percent));
    }
  }

  function fail(message, fields) {
    button.disabled = false;
    form.removeAttribute("aria-busy");
    errorText.textContent = message;
    errorFields.textContent = "";
    (fields || []).forEach(function (field) {
      var item = document.createElement("li");
      if (field.id && document.getElementById(field.id)) {
        var link = document.createElement("a");
        link.href = "#" + field.id;
        link.textContent = field.name;
        item.appendChild(link);
        document.getElementById(field.id).setAttribute("aria-invalid", "true");
      } else {
        item.appendChild(document.createTextNode(field.name));
      }
      item.appendChild(document.createTextNode(": " + field.hint));
      errorFields.appendChild(item);
    });
    errors.hidden = false;
    errors.focus();
  }

  form.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    if (!submitter || submitter.value !== "publish" || !form.checkValidity()) { return; }
    event.preventDefault();
    var data = new FormData(form);
    data.set("action", "publish");
    var xhr = new XMLHttpRequest();
    // Not form.action: the buttons named "action" shadow it.
    xhr.open("POST", form.getAttribute("action"));
    xhr.setRequestHeader("X-Requested-With", "XMLHttpRequest");
    xhr.responseType = "json";
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable && e.total > 0) {
        show(Math.min(100, Math.floor((e.loaded * 100) / e.total)));
      }
    });
    xhr.upload.addEventListener("load", function () {
      show(100);
      text.textContent = form.dataset.publishing;
    });
    xhr.addEventListener("load", function () {
      var body = xhr.response || {};
      if (xhr.status >= 200 && xhr.status < 300 && body.location) {
        window.location.assign(body.location);
      } else {
        fail(body.message || form.dataset.failed, body.fields);
      }
    });
    xhr.addEventListener("error", function () { fail(form.dataset.failed, []); });
    xhr.addEventListener("abort", function () { fail(form.dataset.failed, []); });
    errors.hidden = true;
    status.hidden = false;
    lastShown = -1;
    show(0);
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    xhr.send(data);
  });
})();
