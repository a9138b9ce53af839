"""Throttle of failed logins that slows guessing without letting anyone lock anyone out.

Three budgets, all in Redis (shared by every replica), checked before the password:

1. **Account and address**: after ``free_failures`` failures of one account from one
   address, each further failure makes that pair wait ``base * 2**n`` seconds (up to
   ``backoff_max``) before its next try. A guesser at one address gets a handful of tries
   an hour; the account's owner at another address is not affected at all.
2. **Account, from addresses it is not known at**: once the account has had
   ``account_failures`` failures in the window (guessing from many addresses), logins to it
   from an address it never logged in from get one try per ``slowdown`` seconds between
   them. Slowed, never locked: the owner gets a turn within seconds, and logs in at once
   from an address they used before.
3. **Address, for accounts not known at it**: once one address has had ``ip_failures``
   failures in the window (across accounts: credential stuffing, a test run), its tries for
   accounts never logged in from there get one turn per ``slowdown`` seconds. People
   behind the same NAT who logged in from it before are not slowed.

A success clears the pair's failures and remembers the address for the account (30 days).
Emails are hashed: the key space holds no addresses in clear. docs/api.md, login throttle.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.errors import RateLimited

KNOWN_FOR_SECONDS = 30 * 24 * 3600

# KEYS: 1 pair wait, 2 known addresses of the account, 3 account failures, 4 account turn,
# 5 address failures, 6 address turn. ARGV: 1 address, 2 account threshold, 3 address
# threshold, 4 slowdown ms. Returns the milliseconds to wait (0: go ahead).
_CHECK = """
local wait = redis.call('PTTL', KEYS[1])
if wait > 0 then return wait end
if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[2], ARGV[1]) == 1 then return 0 end
local function turn(failures_key, threshold, turn_key)
  local failures = tonumber(redis.call('GET', failures_key) or '0')
  if failures < tonumber(threshold) then return 0 end
  if redis.call('SET', turn_key, '1', 'NX', 'PX', ARGV[4]) then return 0 end
  return math.max(redis.call('PTTL', turn_key), 1)
end
local account = turn(KEYS[3], ARGV[2], KEYS[4])
if account > 0 then return account end
if ARGV[1] == '' then return 0 end
return turn(KEYS[5], ARGV[3], KEYS[6])
"""

# KEYS: 1 pair failures, 2 pair wait, 3 account failures, 4 address failures (optional).
# ARGV: 1 window s, 2 free failures, 3 base ms, 4 max ms. Counts the failure everywhere
# and sets the pair's wait; returns it in ms.
_RECORD = """
local pair = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1])
for i = 3, #KEYS do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('EXPIRE', KEYS[i], ARGV[1]) end
end
local over = pair - tonumber(ARGV[2])
if over < 0 then return 0 end
local wait = math.min(tonumber(ARGV[3]) * 2 ^ math.min(over, 30), tonumber(ARGV[4]))
redis.call('SET', KEYS[2], '1', 'PX', math.floor(wait))
return math.floor(wait)
"""

# KEYS: 1 pair failures, 2 pair wait, 3 known addresses. ARGV: 1 address, 2 known for s.
_SUCCESS = """
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[1] ~= '' then
  redis.call('SADD', KEYS[3], ARGV[1])
  redis.call('EXPIRE', KEYS[3], ARGV[2])
end
return 1
"""


@dataclass(frozen=True)
class ThrottlePolicy:
    """The budgets (UserSettings ``login_*``)."""

    free_failures: int = 3
    backoff_base_s: float = 1.0
    backoff_max_s: float = 900.0
    window_s: int = 3600
    account_failures: int = 10
    ip_failures: int = 50
    slowdown_s: float = 2.0


class LoginThrottle:
    def __init__(self, redis: Redis, policy: ThrottlePolicy) -> None:
        self.redis = redis
        self.policy = policy

    @staticmethod
    def _keys(email: str, ip: str | None) -> dict[str, str]:
        account = hashlib.sha256(email.encode()).hexdigest()[:32]
        address = ip or "-"
        return {
            "pair_failures": f"user:login:pair-failures:{account}:{address}",
            "pair_wait": f"user:login:pair-wait:{account}:{address}",
            "known": f"user:login:known:{account}",
            "account_failures": f"user:login:account-failures:{account}",
            "account_turn": f"user:login:account-turn:{account}",
            "ip_failures": f"user:login:ip-failures:{address}",
            "ip_turn": f"user:login:ip-turn:{address}",
        }

    async def check(self, email: str, ip: str | None) -> None:
        """429 with Retry-After while this account and address must wait (see module)."""
        keys = self._keys(email, ip)
        policy = self.policy
        wait_ms = int(
            await self.redis.eval(
                _CHECK,
                6,
                keys["pair_wait"],
                keys["known"],
                keys["account_failures"],
                keys["account_turn"],
                keys["ip_failures"],
                keys["ip_turn"],
                ip or "",
                policy.account_failures,
                policy.ip_failures,
                int(policy.slowdown_s * 1000),
            )
        )
        if wait_ms > 0:
            raise RateLimited(
                "Too many failed logins; wait before trying again.",
                retry_after=-(-wait_ms // 1000),
            )

    async def record_failure(self, email: str, ip: str | None) -> None:
        keys = self._keys(email, ip)
        policy = self.policy
        counted = [keys["pair_failures"], keys["pair_wait"], keys["account_failures"]]
        if ip:
            counted.append(keys["ip_failures"])
        await self.redis.eval(
            _RECORD,
            len(counted),
            *counted,
            policy.window_s,
            policy.free_failures,
            int(policy.backoff_base_s * 1000),
            int(policy.backoff_max_s * 1000),
        )

    async def record_success(self, email: str, ip: str | None) -> None:
        """The pair starts afresh and the address is known for the account."""
        keys = self._keys(email, ip)
        await self.redis.eval(
            _SUCCESS,
            3,
            keys["pair_failures"],
            keys["pair_wait"],
            keys["known"],
            ip or "",
            KNOWN_FOR_SECONDS,
        )
