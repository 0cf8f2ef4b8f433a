// Live password checklist (SPEC §4): progressive enhancement of the list that
// templates/base/password_checklist.html renders. Without this script the page
// still works: the server checks every rule on submit and renders their state.
//
// Binds every <input data-password-checklist="LIST_ID"> (or the input named by
// <ul data-password-input="INPUT_ID">) to its <ul id="LIST_ID">. On each change,
// each <li data-rule="CODE"> that the browser can check (length, lowercase,
// uppercase, digit, special) gets data-met="true|false", its ✓/✗ marker and its
// visually hidden status text. "common" and "personal" are checked by the
// server only: once the password changes, their earlier verdict is cleared.
// A polite live region (LIST_ID-summary) announces the outcome once typing
// pauses, not on every keystroke. Every text comes from the list's data-*
// attributes, translated server-side.
//
// The rules mirror idp/accounts/passwords.py: characters are Unicode code
// points after NFC normalisation; lowercase/uppercase are the Ll/Lu categories;
// a digit is 0-9; "special" is one of data-specials, or, when that is empty,
// anything that is neither a letter nor a number.
//
// The confirmation: <p data-password-match="PASSWORD_ID" data-confirm-input="CONFIRM_ID">
// (password_match in the same template) says whether both fields are the same
// once the confirmation holds something; when they are, the confirmation's
// error from the last submit (and its line in the error summary) is hidden,
// since it no longer holds.
(function () {
  "use strict";

  var BROWSER_RULES = ["length", "lowercase", "uppercase", "digit", "special"];
  var MARKERS = { "true": "\u2713", "false": "\u2717", pending: "\u2022" };
  var ANNOUNCE_DELAY_MS = 1200;

  var LOWER, UPPER, LETTER_OR_NUMBER;
  try {
    LOWER = new RegExp("\\p{Ll}", "u");
    UPPER = new RegExp("\\p{Lu}", "u");
    LETTER_OR_NUMBER = new RegExp("[\\p{L}\\p{N}]", "u");
  } catch (unsupported) {
    // A browser without Unicode property escapes keeps the server-side checklist.
    return;
  }

  function evaluate(password, policy) {
    var chars = Array.from(password.normalize("NFC"));
    var specials = policy.specials || "";
    function some(test) {
      for (var i = 0; i < chars.length; i += 1) {
        if (test(chars[i])) { return true; }
      }
      return false;
    }
    return {
      length: chars.length >= policy.minLength && chars.length <= policy.maxLength,
      lowercase: some(function (c) { return LOWER.test(c); }),
      uppercase: some(function (c) { return UPPER.test(c); }),
      digit: some(function (c) { return c >= "0" && c <= "9"; }),
      special: some(specials
        ? function (c) { return specials.indexOf(c) !== -1; }
        : function (c) { return !LETTER_OR_NUMBER.test(c); })
    };
  }

  function setState(item, state, list) {
    var marker = item.querySelector(".password-rule-marker");
    var status = item.querySelector(".password-rule-status");
    if (state === "pending") {
      item.removeAttribute("data-met");
    } else {
      item.setAttribute("data-met", state);
    }
    if (marker) { marker.textContent = MARKERS[state]; }
    if (status) {
      status.textContent = state === "true" ? list.getAttribute("data-text-met")
        : state === "false" ? list.getAttribute("data-text-unmet") : "";
    }
  }

  function ruleText(item) {
    var text = item.querySelector(".password-rule-text");
    return (text || item).textContent.replace(/\s+/g, " ").trim();
  }

  function bind(input, list) {
    if (input.getAttribute("data-password-checklist-bound")) { return; }
    input.setAttribute("data-password-checklist-bound", "true");
    var policy = {
      minLength: parseInt(list.getAttribute("data-min-length"), 10),
      maxLength: parseInt(list.getAttribute("data-max-length"), 10),
      specials: list.getAttribute("data-specials") || ""
    };
    var summary = document.getElementById(list.id + "-summary");
    var timer = null;
    var announced = "";

    function update() {
      var results = evaluate(input.value, policy);
      var met = 0;
      var total = 0;
      var missing = [];
      BROWSER_RULES.forEach(function (code) {
        var item = list.querySelector('li[data-rule="' + code + '"]');
        if (!item) { return; }
        total += 1;
        if (results[code]) {
          met += 1;
        } else {
          missing.push(ruleText(item));
        }
        setState(item, results[code] ? "true" : "false", list);
      });
      return { met: met, total: total, missing: missing };
    }

    function announce(outcome) {
      if (!summary) { return; }
      var text = (list.getAttribute("data-text-summary") || "")
        .replace("{met}", String(outcome.met))
        .replace("{total}", String(outcome.total));
      if (outcome.missing.length) {
        text += " " + (list.getAttribute("data-text-missing") || "") + " " + outcome.missing.join(", ") + ".";
      }
      if (text !== announced) {
        announced = text;
        summary.textContent = text;
      }
    }

    input.addEventListener("input", function () {
      // The server's verdict on these was for the password it received, not this one.
      list.querySelectorAll("li[data-rule]").forEach(function (item) {
        if (BROWSER_RULES.indexOf(item.getAttribute("data-rule")) === -1) {
          setState(item, "pending", list);
        }
      });
      var outcome = update();
      window.clearTimeout(timer);
      timer = window.setTimeout(function () { announce(outcome); }, ANNOUNCE_DELAY_MS);
    });

    // A value already there (restored by the browser, filled by a password
    // manager) is shown at once, silently; an empty field keeps what the
    // server rendered.
    if (input.value) { update(); }
  }

  function bindMatch(message) {
    var password = document.getElementById(message.getAttribute("data-password-match"));
    var confirm = document.getElementById(message.getAttribute("data-confirm-input"));
    if (!password || !confirm) { return; }
    var text = message.querySelector(".password-match-text");
    var marker = message.querySelector(".password-rule-marker");
    var error = document.getElementById(confirm.id + "-error");
    var summaryLink = document.querySelector('.error-summary a[href="#' + confirm.id + '"]');
    var summaryItem = summaryLink ? summaryLink.parentNode : null;

    function update() {
      if (!confirm.value) {
        message.hidden = true;
        return;
      }
      var same = confirm.value === password.value;
      message.hidden = false;
      message.setAttribute("data-met", same ? "true" : "false");
      if (marker) { marker.textContent = MARKERS[same ? "true" : "false"]; }
      if (text) {
        text.textContent = message.getAttribute(same ? "data-text-same" : "data-text-different");
      }
      if (error) { error.hidden = same; }
      if (summaryItem) { summaryItem.hidden = same; }
      if (same) {
        confirm.removeAttribute("aria-invalid");
      } else if (error) {
        confirm.setAttribute("aria-invalid", "true");
      }
    }

    password.addEventListener("input", update);
    confirm.addEventListener("input", update);
    if (confirm.value) { update(); }
  }

  function init() {
    document.querySelectorAll("p[data-password-match]").forEach(bindMatch);
    document.querySelectorAll("input[data-password-checklist]").forEach(function (input) {
      var list = document.getElementById(input.getAttribute("data-password-checklist"));
      if (list) { bind(input, list); }
    });
    document.querySelectorAll("ul[data-password-input]").forEach(function (list) {
      var input = document.getElementById(list.getAttribute("data-password-input"));
      if (input && input.tagName === "INPUT") { bind(input, list); }
    });
  }

  if (typeof document === "undefined") {
    // Loaded outside a page (the unit tests run the rules under Node).
    if (typeof module === "object" && module.exports) { module.exports = { evaluate: evaluate }; }
    return;
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
}());
