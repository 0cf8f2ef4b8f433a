"""Passkeys ("Me connecter en 1 clic"): WebAuthn credentials that sign a member in on their own."""
