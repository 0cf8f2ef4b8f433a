"""Outgoing messages (email, SMS, letters): senders behind protocols, a queue with retries.

- ``idp.channels.senders``: the ``EmailSender``, ``SmsSender`` and ``LetterSender``
  protocols, their SMTP / HTTP implementations and the outbox ones, chosen by
  ``IDP_MAIL_BACKEND``, ``IDP_SMS_BACKEND`` and ``IDP_LETTER_BACKEND``.
- ``idp.channels.letters``: a letter message as the PDF that is printed and posted.
- ``idp.channels.services``: the ``Messages`` queue (render per tenant, store,
  deliver with retries).
- ``idp.channels.dispatch``: what a transaction queued wakes the worker when it commits.
- ``idp.channels.worker``: the delivery loop of ``idp outbox work`` and what it waits on.
- ``idp.channels.models``: the ``Message`` rows the queue and the outbox page use.

``idp outbox work`` delivers them; request code never sends.
"""
