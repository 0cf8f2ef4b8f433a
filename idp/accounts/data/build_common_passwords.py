"""Build common-passwords.txt from the lists two PyPI packages ship (see README.md beside this file).

Usage, from the repository root, with the project's venv (for ``idp.accounts.passwords.fold``):

    .venv/bin/python idp/accounts/data/build_common_passwords.py DJANGO_WHEEL ZXCVBN_WHEEL \
        > idp/accounts/data/common-passwords.txt

Reads the wheels as archives: neither package is installed or needed at run time.
"""

from __future__ import annotations

import gzip
import re
import sys
import zipfile

from idp.accounts.passwords import fold

DJANGO_LIST = "django/contrib/auth/common-passwords.txt.gz"
ZXCVBN_LISTS = "zxcvbn/frequency_lists.py"
# frequency_lists.py holds each list as one comma-joined string literal: "passwords": "123456,password,…"
ZXCVBN_PASSWORDS = re.compile(r'"passwords":\s*"([^"]*)"')


def django_passwords(wheel: str) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return gzip.decompress(archive.read(DJANGO_LIST)).decode("utf-8").splitlines()


def zxcvbn_passwords(wheel: str) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(ZXCVBN_LISTS).decode("utf-8")
    found = ZXCVBN_PASSWORDS.search(source)
    if not found:
        raise SystemExit(f"{wheel}: no passwords list in {ZXCVBN_LISTS}")
    return found.group(1).split(",")


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    entries = {fold(p) for p in django_passwords(argv[1]) + zxcvbn_passwords(argv[2])}
    # One entry a line: an entry holding a line break or only spaces cannot be matched anyway.
    entries = {p for p in entries if p.strip() and "\n" not in p and "\r" not in p}
    sys.stdout.write("".join(f"{p}\n" for p in sorted(entries)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
