// The login session: tokens kept in localStorage (a reload stays logged in), the access
// token refreshed silently before it runs out, one refresh at a time across tabs (a
// rotated refresh token presented twice would revoke the session), and the way back to
// the login page when the session has ended.
import { signal } from "@preact/signals";

export interface Session {
  accessToken: string;
  refreshToken: string;
  expiresAt: number; // epoch ms
  email: string;
}

const KEY = "tradebot.session";

function load(): Session | null {
  try {
    const raw = localStorage.getItem(KEY);
    return raw ? (JSON.parse(raw) as Session) : null;
  } catch {
    return null;
  }
}

export const session = signal<Session | null>(load());
/** Why the user was sent back to the login page, shown there. */
export const sessionNotice = signal<string>("");

let timer: ReturnType<typeof setTimeout> | undefined;

function store(next: Session | null): void {
  session.value = next;
  if (next) localStorage.setItem(KEY, JSON.stringify(next));
  else localStorage.removeItem(KEY);
  schedule();
}

interface TokenPair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

export function startSession(email: string, pair: TokenPair): void {
  sessionNotice.value = "";
  store({
    accessToken: pair.access_token,
    refreshToken: pair.refresh_token,
    expiresAt: Date.now() + pair.expires_in * 1000,
    email,
  });
}

export function endSession(notice = ""): void {
  sessionNotice.value = notice;
  store(null);
}

function schedule(): void {
  clearTimeout(timer);
  const current = session.value;
  if (!current) return;
  // Refresh at 80% of the token's life (at least 5 s from now).
  const left = current.expiresAt - Date.now();
  const wait = Math.max(5_000, left * 0.8);
  timer = setTimeout(() => void refreshSession(), Math.min(wait, 2 ** 31 - 1));
}

let inflight: Promise<boolean> | null = null;

/** A new token pair for the current session; false (and logged out) when it has ended. */
export function refreshSession(): Promise<boolean> {
  inflight ??= withLock(doRefresh).finally(() => {
    inflight = null;
  });
  return inflight;
}

async function withLock(fn: () => Promise<boolean>): Promise<boolean> {
  const locks = (navigator as Navigator & { locks?: LockManager }).locks;
  return locks ? locks.request("tradebot-refresh", fn) : fn();
}

async function doRefresh(): Promise<boolean> {
  const before = session.value;
  if (!before) return false;
  // Another tab may have rotated the pair while this one waited for the lock.
  const stored = load();
  if (stored && stored.refreshToken !== before.refreshToken) {
    store(stored);
    return true;
  }
  let response: Response;
  try {
    response = await fetch("/user/auth/refresh", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/json" },
      body: JSON.stringify({ refresh_token: before.refreshToken }),
    });
  } catch {
    schedule(); // offline: keep the session and try again later
    return false;
  }
  if (response.ok) {
    const pair = (await response.json()) as TokenPair;
    startSession(before.email, pair);
    return true;
  }
  if (response.status === 401 || response.status === 403 || response.status === 422) {
    endSession("Your session has ended; log in again.");
  } else {
    schedule();
  }
  return false;
}

// Logging out (or in) in another tab applies here too.
window.addEventListener("storage", (event) => {
  if (event.key !== KEY) return;
  session.value = load();
  schedule();
});

schedule();
