// The editors' console. Plain script, loaded from the service itself
// (CSP: script-src 'self'); every page works without it.
"use strict";

// A form is sent once: its button is disabled after the first submit, so a
// double click does not send it twice. (A repeat that gets through anyway
// carries the same idempotency key and writes nothing more.)
document.addEventListener("submit", function (event) {
  var form = event.target;
  if (!(form instanceof HTMLFormElement)) {
    return;
  }
  if (form.dataset.sent === "yes") {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "yes";
  var buttons = form.querySelectorAll("button[type=submit], button:not([type])");
  for (var i = 0; i < buttons.length; i++) {
    buttons[i].disabled = true;
  }
});

// Coming back to a page from the history re-enables its forms.
window.addEventListener("pageshow", function () {
  var forms = document.querySelectorAll("form[data-sent]");
  for (var i = 0; i < forms.length; i++) {
    delete forms[i].dataset.sent;
    var buttons = forms[i].querySelectorAll("button");
    for (var j = 0; j < buttons.length; j++) {
      buttons[j].disabled = false;
    }
  }
});
