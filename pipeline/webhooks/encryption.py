"""Secrets at rest (webhook signing secrets): Fernet with a key from TICKWATCH_SECRET_KEY.

Webhook secrets must be recoverable to sign with, so they are encrypted rather than hashed. Without a key
in the settings (a laptop, the demo, the tests) one is generated once into `<stack_dir>/secret.key`
(mode 0600) and every process on the host shares it; processes on different hosts or containers need
TICKWATCH_SECRET_KEY set to the same value (`python -c "from cryptography.fernet import Fernet;
print(Fernet.generate_key().decode())"`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from pipeline.settings import Settings

KEY_FILE = "secret.key"


class SecretKeyError(RuntimeError):
    """The key is malformed, or not the one the stored secrets were encrypted with."""


def fernet(settings: Settings) -> Fernet:
    configured = settings.secret_key.get_secret_value() if settings.secret_key is not None else None
    return _fernet(configured, settings.stack_dir)


@lru_cache
def _fernet(configured: str | None, stack_dir: Path) -> Fernet:
    if configured is not None:
        key, origin = configured.encode(), "TICKWATCH_SECRET_KEY"
    else:
        key, origin = _key_file(stack_dir), str(stack_dir / KEY_FILE)
    try:
        return Fernet(key)
    except ValueError:
        raise SecretKeyError(
            f"{origin} is not a Fernet key (32 url-safe base64-encoded bytes); make one with Fernet.generate_key()"
        ) from None


def _key_file(stack_dir: Path) -> bytes:
    """The host's generated key: the first process to need one writes it, the others read it (a complete
    file appears at once: it is written aside, then hard-linked into place, which fails if one exists)."""
    path = stack_dir / KEY_FILE
    if not path.exists():
        stack_dir.mkdir(parents=True, exist_ok=True)
        draft = stack_dir / f".{KEY_FILE}.{os.getpid()}"
        draft.write_bytes(Fernet.generate_key())
        draft.chmod(0o600)
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes().strip()


def encrypt(settings: Settings, text: str) -> str:
    return fernet(settings).encrypt(text.encode()).decode()


def decrypt(settings: Settings, token: str) -> str:
    try:
        return fernet(settings).decrypt(token.encode()).decode()
    except InvalidToken:
        raise SecretKeyError(
            "a stored secret does not decrypt with this key: every process must use the same "
            "TICKWATCH_SECRET_KEY (or share <stack_dir>/secret.key)"
        ) from None
