"""Password hashing: argon2id through pwdlib; bcrypt hashes still verify and are upgraded."""

from __future__ import annotations

import asyncio

from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

# argon2id first (new hashes); bcrypt second so older hashes verify and get rehashed.
_hasher = PasswordHash((Argon2Hasher(), BcryptHasher()))
# Verified against when the email is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("not the password of anyone")


async def hash_password(password: str) -> str:
    """An argon2id hash; computed off the event loop (it is deliberately slow)."""
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password: str, hashed: str | None) -> tuple[bool, str | None]:
    """(matches, new hash when the stored one should be upgraded)."""
    if hashed is None:
        await asyncio.to_thread(_hasher.verify, password, _DUMMY_HASH)
        return False, None
    try:
        return await asyncio.to_thread(_hasher.verify_and_update, password, hashed)
    except UnknownHashError:  # e.g. a row seeded without a real hash never matches
        return False, None
    except ValueError:
        # bcrypt refuses passwords over 72 bytes (or with NUL): such a password was never
        # the one that made the hash, so it is a wrong password like any other.
        return False, None
