"""A sign-in in progress, from the password to the portal.

- ``state``: what the browser session holds between the steps (the pending sign-in) and
  its time limit;
- ``services``: the ``SignIn`` service (password check, trusted browser, second factor, new
  browser notice), with its rate limits, and the one ``CodeSender`` that every one-time code
  goes through (sign-in, contact changes, registration);
- ``cookies``: the trusted-device and known-browser cookies;
- ``completion``: the last step: sign in, then hand the interaction back to the protocol;
- ``views``: the pages (password, code, first-sign-in terms, more time).
"""
