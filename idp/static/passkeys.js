// Passkeys (WebAuthn): "Ajouter une clé d'accès" and "Me connecter en 1 clic".
// Progressive enhancement: every page works without this script; only passkeys need it.
//
// Binds every <form data-passkey="create|get" data-passkey-options="URL"
// data-passkey-error="ID"> holding hidden inputs "csrf_token" and "credential".
// On submit it asks URL for the ceremony's options (POST, CSRF token in the
// X-CSRFToken header; JSON with base64url strings), runs
// navigator.credentials.create() or .get(), writes the credential as JSON
// (base64url, the shape of WebAuthn Level 3's toJSON()) into "credential" and
// submits the form: the server answers with its usual page or redirect. A
// cancelled or failed ceremony shows the element named by data-passkey-error.
//
// Sign-in ("get"): the form's [data-passkey-available] container is shown only
// where the browser has WebAuthn. Where it also offers passkeys in the
// identifier field's autofill (autocomplete="username webauthn"), a
// conditional request waits there from the start; the button cancels it and
// asks directly.
(function () {
  "use strict";

  if (typeof window === "undefined" || !window.PublicKeyCredential || !navigator.credentials) {
    return;
  }

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var binary = window.atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i += 1) { bytes[i] = binary.charCodeAt(i); }
    return bytes;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i += 1) { binary += String.fromCharCode(bytes[i]); }
    return window.btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withBinaryIds(descriptors) {
    return (descriptors || []).map(function (descriptor) {
      return Object.assign({}, descriptor, { id: toBytes(descriptor.id) });
    });
  }

  function publicKeyOptions(kind, options) {
    var result = Object.assign({}, options, { challenge: toBytes(options.challenge) });
    if (kind === "create") {
      result.user = Object.assign({}, options.user, { id: toBytes(options.user.id) });
      result.excludeCredentials = withBinaryIds(options.excludeCredentials);
    } else {
      result.allowCredentials = withBinaryIds(options.allowCredentials);
    }
    return result;
  }

  function credentialJSON(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toBase64url(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) { json.response.userHandle = toBase64url(response.userHandle); }
    }
    return JSON.stringify(json);
  }

  function field(form, name) {
    return form.elements.namedItem(name);
  }

  function fetchOptions(form) {
    return window.fetch(form.getAttribute("data-passkey-options"), {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": field(form, "csrf_token").value, "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("passkey options: HTTP " + response.status); }
      return response.json();
    });
  }

  function ceremony(form, mediation, signal) {
    var kind = form.getAttribute("data-passkey");
    return fetchOptions(form).then(function (options) {
      var request = { publicKey: publicKeyOptions(kind, options) };
      if (mediation) { request.mediation = mediation; }
      if (signal) { request.signal = signal; }
      return kind === "create" ? navigator.credentials.create(request) : navigator.credentials.get(request);
    }).then(function (credential) {
      if (!credential) { throw new Error("no credential"); }
      field(form, "credential").value = credentialJSON(credential);
      form.submit();
    });
  }

  function showError(form, shown) {
    var error = document.getElementById(form.getAttribute("data-passkey-error"));
    if (error) { error.hidden = !shown; }
  }

  function bind(form) {
    var kind = form.getAttribute("data-passkey");
    var waiting = null; // the conditional request's AbortController
    var busy = false;

    function waitInAutofill() {
      if (kind !== "get" || typeof window.AbortController === "undefined"
          || !window.PublicKeyCredential.isConditionalMediationAvailable) {
        return;
      }
      window.PublicKeyCredential.isConditionalMediationAvailable().then(function (available) {
        if (!available || busy) { return; }
        var controller = new window.AbortController();
        waiting = controller;
        // Cancelled by the button, or given up: the button still works.
        ceremony(form, "conditional", controller.signal).catch(function () {
          if (waiting === controller) { waiting = null; }
        });
      }).catch(function () { return null; });
    }

    form.addEventListener("submit", function (event) {
      event.preventDefault();
      if (busy) { return; }
      var name = field(form, "name");
      if (kind === "create" && name && !name.value.trim()) {
        form.submit(); // the server says what is missing; no passkey made for nothing
        return;
      }
      busy = true;
      showError(form, false);
      if (waiting) {
        waiting.abort();
        waiting = null;
      }
      ceremony(form).catch(function () {
        busy = false;
        showError(form, true);
      });
    });

    var container = form.closest("[data-passkey-available]");
    if (container) { container.hidden = false; }
    waitInAutofill();
  }

  document.querySelectorAll("form[data-passkey]").forEach(bind);
}());
