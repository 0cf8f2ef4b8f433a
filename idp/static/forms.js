// A form is sent once: pressing its button again while the first sending is on its way (a
// double tap, an impatient press on a slow connection) sends nothing more, so the page that
// comes is the answer to the first, not a refusal of the second (a code or a link is spent by
// the first). After RESEND_AFTER without an answer, a press sends it again. A script that
// handles a form's sending itself (it prevents the default) is left to it. Progressive
// enhancement: without this script, the server still spends each code and link once.
(function () {
  "use strict";

  var RESEND_AFTER = 10000;
  var SENT_AT = "data-sent-at";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (event.defaultPrevented || form.method !== "post") { return; }
    var sentAt = Number(form.getAttribute(SENT_AT));
    if (sentAt && Date.now() - sentAt < RESEND_AFTER) {
      event.preventDefault();
      return;
    }
    form.setAttribute(SENT_AT, String(Date.now()));
  });

  // A page shown again from the browser's history (Back) may be sent again at once.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) { return; }
    document.querySelectorAll("form[" + SENT_AT + "]").forEach(function (form) {
      form.removeAttribute(SENT_AT);
    });
  });
}());
