"""Which `amr` a passkey earns: hwk only for a single-device roaming security key."""

from __future__ import annotations

import pytest

from idp.passkeys.services import PasskeyRejected, key_kind, parse_response


@pytest.mark.parametrize(("attachment", "transports", "multi_device", "kind"), [
    ("cross-platform", ["usb"], False, "hwk"),
    ("cross-platform", ["nfc", "usb", "ble"], False, "hwk"),
    ("cross-platform", ["usb"], True, "swk"),  # synced: the key left the device
    ("cross-platform", ["hybrid"], False, "swk"),  # a phone
    ("cross-platform", ["usb", "hybrid"], False, "swk"),
    ("cross-platform", [], False, "swk"),  # nothing says it is hardware
    ("platform", ["internal"], False, "swk"),
    (None, ["usb"], False, "swk"),
    ("cross-platform", ["usb", "bogus"], False, "swk"),
])
def test_key_kind(attachment, transports, multi_device, kind):
    assert key_kind(attachment, transports, multi_device) == kind


@pytest.mark.parametrize("raw", ["", "{", "[]", "3", '{"id": 3}', "[" * 100_000])
def test_a_response_that_is_not_a_credential_is_rejected(raw):
    with pytest.raises(PasskeyRejected):
        parse_response(raw)
