"""Encryption of exchange API keys at rest (Fernet: AES-128-CBC + HMAC-SHA256)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken


class KeyVaultError(Exception):
    """A ciphertext that this key cannot open (wrong key or tampered data)."""


class KeyVault:
    """Encrypts and decrypts secrets with the key from ``ENCRYPTION_KEY``."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except (ValueError, TypeError) as exc:
            raise ValueError(
                "ENCRYPTION_KEY must be a Fernet key: 32 url-safe base64-encoded bytes "
                "(generate one with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'`)"
            ) from exc

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise KeyVaultError("stored secret cannot be decrypted with this key") from exc
