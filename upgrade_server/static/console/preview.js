// The notes preview without reloading the form: the form's texts (not its
// file) are posted to the console's preview endpoint, which answers them
// rendered and sanitised by the same renderer the portal uses.
(function () {
  "use strict";
  var form = document.getElementById("publish-form");
  var target = document.getElementById("preview");
  if (!form || !target || !window.fetch || !window.FormData) { return; }

  form.addEventListener("submit", function (event) {
    var submitter = event.submitter;
    if (!submitter || submitter.value !== "preview") { return; }
    event.preventDefault();
    var body = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (typeof value === "string" && name !== "action") { body.append(name, value); }
    });
    fetch(form.dataset.previewUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-Requested-With": "fetch" }
    }).then(function (response) {
      if (!response.ok) { throw new Error(String(response.status)); }
      return response.text();
    }).then(function (html) {
      target.innerHTML = html;  // sanitised by the server's renderer
      var heading = document.getElementById("preview-h");
      if (heading) { heading.focus(); }
    }).catch(function () {
      target.textContent = form.dataset.previewFailed;
    });
  });
})();
