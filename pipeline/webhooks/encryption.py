"""Secrets at rest (webhook signing secrets): Fernet, with the keys in TICKWATCH_SECRET_KEYS (newest first).

Webhook secrets must be recoverable to sign with, so they are encrypted rather than hashed. New secrets are
encrypted with the first key; any of the keys decrypts, so a key is rotated by putting a new one first,
running `tickwatch secrets rotate` (every stored secret re-encrypted with it) and then dropping the old one.
TICKWATCH_SECRET_KEY (one key) still works.

Without a key in the settings (a laptop, the demo, the tests) one is generated once into
`<stack_dir>/secrets/secret.key` and every process on the host shares it. The file is created with O_EXCL and
O_NOFOLLOW and mode 0600 from the start, in a directory of mode 0700; a key file or directory that anyone else
may read or write (or a key file that is a symbolic link, or someone else's) is refused with how to fix it, as
a planted key would silently decrypt-and-re-encrypt every secret for whoever planted it. Processes on
different hosts or containers need the same keys set (`python -c "from cryptography.fernet import Fernet;
print(Fernet.generate_key().decode())"`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from pipeline.settings import Settings, reveal

KEY_DIR = "secrets"
KEY_FILE = "secret.key"


class SecretKeyError(RuntimeError):
    """A key is malformed or unsafe, or not the one the stored secrets were encrypted with."""


def fernet(settings: Settings) -> MultiFernet:
    return _fernet(tuple(reveal(key) or "" for key in settings.secret_keys_in_use), settings.stack_dir)


@lru_cache
def _fernet(configured: tuple[str, ...], stack_dir: Path) -> MultiFernet:
    if configured:
        keys, origin = [key.encode() for key in configured], "TICKWATCH_SECRET_KEYS"
    else:
        keys, origin = [key_file(stack_dir)], str(stack_dir / KEY_DIR / KEY_FILE)
    try:
        return MultiFernet([Fernet(key) for key in keys])
    except ValueError:
        raise SecretKeyError(
            f"{origin} holds something that is not a Fernet key (32 url-safe base64-encoded bytes); make one with "
            "Fernet.generate_key()"
        ) from None


def key_file(stack_dir: Path) -> bytes:
    """The host's generated key: created by the first process that needs one (atomically, private from the
    start), read by the others, refused if anyone else could have read or planted it."""
    folder = stack_dir / KEY_DIR
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700, parents=True)
    _private(folder, "directory", 0o700)
    path = folder / KEY_FILE
    earlier = stack_dir / KEY_FILE  # where versions before 0.2 kept it
    if earlier.exists() and not path.exists():
        _private(earlier, "file", 0o600)
        os.rename(earlier, path)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(descriptor, "wb") as file:
            file.write(Fernet.generate_key())
    _private(path, "file", 0o600)
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as file:
        return file.read().strip()


def _private(path: Path, kind: str, mode: int) -> None:
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        raise SecretKeyError(f"{path} is a symbolic link; refusing it as the key {kind}: remove it")
    if info.st_uid != os.getuid():
        raise SecretKeyError(
            f"{path} belongs to uid {info.st_uid}, not to this user; remove it or set TICKWATCH_SECRET_KEYS"
        )
    if info.st_mode & 0o077:
        raise SecretKeyError(
            f"others may read or write the key {kind} {path} (mode {stat.S_IMODE(info.st_mode):o}): "
            f"chmod {mode:o} {path}, or remove it if you did not make it"
        )


def encrypt(settings: Settings, text: str) -> str:
    return fernet(settings).encrypt(text.encode()).decode()


def decrypt(settings: Settings, token: str) -> str:
    try:
        return fernet(settings).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyError(
            "a stored secret does not decrypt with any of the keys: every process must use the same "
            "TICKWATCH_SECRET_KEYS (or share <stack_dir>/secrets/secret.key)"
        ) from None


def reencrypt(settings: Settings, token: str) -> str:
    """`token` encrypted again with the first key (it decrypts with any of them)."""
    try:
        return fernet(settings).rotate(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyError(
            "a stored secret does not decrypt with any of the keys; rotate with the old key "
            "still in TICKWATCH_SECRET_KEYS"
        ) from None
