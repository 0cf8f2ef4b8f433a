// Time limits (WCAG 2.2.1 Timing adjustable): warn before the end, offer more time,
// and say when the time is out. Progressive enhancement: without this script the
// page still states its limit in words, and the server still enforces it.
//
// Binds every element made by the deadline_notice macro (templates/base/macros.html):
//   data-deadline="SECONDS LEFT" data-deadline-warn="SECONDS BEFORE THE END"
//   data-deadline-warning="TEXT" data-deadline-expired="TEXT"
// holding a live region [data-deadline-message] (role="alert", empty at first) and
// elements [data-deadline-when="warning expired"] shown only in those states.
// A button [data-deadline-extend="URL"] posts, in the background, its
// data-deadline-csrf token (and data-deadline-interaction, if any) to URL; the JSON answer
// gives the new seconds left and a message, or an error. Focus moves only after
// the member pressed that button, to the message that replaces it.
(function () {
  "use strict";

  function bind(notice) {
    var message = notice.querySelector("[data-deadline-message]");
    var warnBefore = Number(notice.getAttribute("data-deadline-warn")) * 1000;
    var endsAt = Date.now() + Number(notice.getAttribute("data-deadline")) * 1000;
    var state = null;

    function show(next, text) {
      state = next;
      notice.setAttribute("data-deadline-state", next);
      message.textContent = text;
      notice.querySelectorAll("[data-deadline-when]").forEach(function (element) {
        element.hidden = element.getAttribute("data-deadline-when").split(" ").indexOf(next) < 0;
      });
      // A warning kept at the bottom of the screen (idp.css) must not hide the field the member
      // moves to: scrolling to a focused element leaves that much room below it.
      var sticky = window.getComputedStyle(notice).position === "sticky";
      document.documentElement.style.scrollPaddingBottom = sticky ? notice.offsetHeight + "px" : "";
    }

    // Checked every second against the clock, so a phone waking from sleep catches up at once.
    function tick() {
      var left = endsAt - Date.now();
      if (left <= 0) {
        if (state !== "expired") { show("expired", notice.getAttribute("data-deadline-expired")); }
      } else if (left <= warnBefore && (state === null || state === "extended")) {
        show("warning", notice.getAttribute("data-deadline-warning"));
      }
    }

    var extend = notice.querySelector("[data-deadline-extend]");
    if (extend) {
      extend.addEventListener("click", function () {
        if (state === "asking") { return; }
        state = "asking";
        var body = new URLSearchParams();
        body.set("csrf_token", extend.getAttribute("data-deadline-csrf"));
        if (extend.hasAttribute("data-deadline-interaction")) {
          body.set("interaction", extend.getAttribute("data-deadline-interaction"));
        }
        window.fetch(extend.getAttribute("data-deadline-extend"), {
          method: "POST",
          credentials: "same-origin",
          headers: { "Accept": "application/json" },
          body: body
        }).then(function (response) {
          return response.json().then(function (answer) { return { ok: response.ok, answer: answer }; });
        }).then(function (result) {
          if (result.ok) {
            endsAt = Date.now() + result.answer.expires_in * 1000;
            show("extended", result.answer.message);
          } else if (result.answer.error === "expired") {
            endsAt = Date.now();
            show("expired", result.answer.error_description);
          } else {
            // No more extensions: the time left still runs, then the page says it is out.
            show("refused", result.answer.error_description);
          }
        }).catch(function () {
          show("warning", notice.getAttribute("data-deadline-warning"));
        }).then(function () {
          message.focus();
        });
      });
    }

    tick();
    window.setInterval(tick, 1000);
  }

  document.querySelectorAll("[data-deadline]").forEach(bind);
}());
