"""Outgoing messages (email and SMS): senders behind protocols, a queue with retries.

- ``idp.channels.senders``: the ``EmailSender`` and ``SmsSender`` protocols,
  their SMTP / HTTP-gateway implementations and the outbox ones, chosen by
  ``IDP_MAIL_BACKEND`` and ``IDP_SMS_BACKEND``.
- ``idp.channels.services``: the ``Messages`` queue (render per tenant, store,
  deliver with retries).
- ``idp.channels.dispatch``: what a transaction queued wakes the worker when it commits.
- ``idp.channels.worker``: the delivery loop of ``idp outbox work`` and what it waits on.
- ``idp.channels.models``: the ``Message`` rows the queue and the outbox page use.

``idp outbox work`` delivers them; request code never sends.
"""
