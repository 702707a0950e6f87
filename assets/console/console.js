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

// The Queue, live: the page names a stream of claim events (data-live) and
// the URL of its list alone (data-fragment). On each event the list is
// fetched again, server-rendered, and put in place of the old one; events
// that arrive during a fetch cause one more fetch after it.
(function () {
  var list = document.getElementById("queue-list");
  if (!list || !list.dataset.live || !list.dataset.fragment || !window.EventSource) {
    return;
  }
  var status = document.getElementById("queue-live");
  var say = function (words) {
    if (status) {
      status.textContent = words;
      status.hidden = false;
    }
  };
  var busy = false;
  var again = false;
  var refresh = function () {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    fetch(list.dataset.fragment, { credentials: "same-origin", cache: "no-store" })
      .then(function (res) {
        // Signed out meanwhile: the fetch ended on the sign-in page.
        if (res.redirected || !res.ok) {
          throw new Error("the queue could not be read (" + res.status + ")");
        }
        return res.text();
      })
      .then(function (html) {
        // Keep the keyboard focus on the same link if it is still listed.
        var focused = document.activeElement;
        var href = focused && list.contains(focused) ? focused.getAttribute("href") : null;
        list.innerHTML = html;
        if (href) {
          var same = list.querySelector('a[href="' + CSS.escape(href) + '"]');
          if (same) {
            same.focus();
          }
        }
        say("Live: updated at " + new Date().toLocaleTimeString() + ".");
      })
      .catch(function () {
        say("The queue could not be updated; reload the page.");
      })
      .then(function () {
        busy = false;
        if (again) {
          again = false;
          refresh();
        }
      });
  };
  var source = new EventSource(list.dataset.live);
  source.addEventListener("open", function () {
    say("Live: new claims appear here as they are asserted.");
  });
  source.addEventListener("claim", refresh);
  source.addEventListener("error", function () {
    if (source.readyState === EventSource.CLOSED) {
      say("Live updates stopped; reload the page to see new claims.");
    }
  });
})();

// "New claim" on a story's page: the text selected in the story's body
// becomes the new claim's quote (?quote=…). The button names the claim
// form in data-href; without a selection it opens the form empty.
(function () {
  var button = document.getElementById("new-claim");
  var body = document.querySelector(".story-body");
  if (!button || !button.dataset.href) {
    return;
  }
  // The selection inside the body, as last seen: pressing the button may
  // clear it before the click arrives.
  var inside = function () {
    var sel = window.getSelection();
    if (!body || !sel || sel.rangeCount === 0 || sel.isCollapsed) {
      return "";
    }
    var range = sel.getRangeAt(0);
    if (!body.contains(range.commonAncestorContainer)) {
      return "";
    }
    return sel.toString().trim();
  };
  var last = "";
  document.addEventListener("selectionchange", function () {
    var now = inside();
    if (now) {
      last = now;
    } else if (document.activeElement !== button) {
      last = "";
    }
  });
  button.addEventListener("click", function (event) {
    event.preventDefault();
    var quote = inside() || last;
    var href = button.dataset.href;
    if (quote) {
      href += (href.indexOf("?") < 0 ? "?" : "&") + "quote=" + encodeURIComponent(quote);
    }
    window.location.assign(href);
  });
})();
