// The shell: the navigation, the page for the current hash route, toasts, and the
// notifications pushed over /notifications/ws while logged in.
import { computed } from "@preact/signals";
import { useEffect } from "preact/hooks";
import { notificationsConnected, onNotification } from "./api/feeds";
import { api } from "./api/http";
import { outages, SERVICE_NAMES, type Service } from "./api/services";
import { endSession, session } from "./api/session";
import type { Me, Page } from "./api/types";
import { href, route } from "./router";
import { me, unread } from "./state";
import { chooseTheme, themeChoice } from "./theme";
import { dismiss, toast, toasts } from "./toasts";
import { LoginPage } from "./pages/Login";
import { MarketsPage } from "./pages/Markets";
import { BacktestsPage } from "./pages/Backtests";
import { BotsPage } from "./pages/Bots";
import { BotPage } from "./pages/Bot";
import { TradingPage } from "./pages/Trading";
import { NotificationsPage } from "./pages/Notifications";
import { SettingsPage } from "./pages/Settings";


const NAV: [string, string][] = [
  ["markets", "Markets"],
  ["backtests", "Backtests"],
  ["bots", "Bots"],
  ["trading", "Paper trading"],
  ["notifications", "Notifications"],
  ["settings", "Settings"],
];

const loggedIn = computed(() => session.value !== null);

function Page() {
  const [first = "markets", second] = route.value.path;
  switch (first) {
    case "markets":
      return <MarketsPage />;
    case "backtests":
      return <BacktestsPage id={second} />;
    case "bots":
      return second ? <BotPage id={second} /> : <BotsPage />;
    case "trading":
      return <TradingPage />;
    case "notifications":
      return <NotificationsPage />;
    case "settings":
      return <SettingsPage />;
    default:
      return (
        <main id="main" class="page">
          <h1>Not found</h1>
          <p>
            There is no page here. <a href={href("markets")}>Go to the markets.</a>
          </p>
        </main>
      );
  }
}

function OutageBar() {
  const down = Object.values(outages.value);
  if (!down.length) return null;
  return (
    <div class="outage-bar" role="status" aria-live="polite">
      {down.map((o) => (
        <span key={o!.service} data-service={o!.service}>
          {SERVICE_NAMES[o!.service as Service]} unavailable
        </span>
      ))}
    </div>
  );
}

function Toasts() {
  return (
    <div class="toasts" role="status" aria-live="polite">
      {toasts.value.map((t) => (
        <div key={t.id} class={`toast toast-${t.tone}`}>
          <strong>{t.title}</strong>
          {t.body ? <p>{t.body}</p> : null}
          <button type="button" class="icon" aria-label="Dismiss" onClick={() => dismiss(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}

async function logout() {
  try {
    await api("/user/auth/logout", { method: "POST", body: {} });
  } catch {
    // The session ends here whatever the server said.
  }
  endSession("You have logged out.");
}

function Shell() {
  const current = route.value.path[0] ?? "markets";
  useEffect(() => {
    api<Me>("/user/me")
      .then((who) => {
        me.value = who;
        const chosen = who.preferences?.theme;
        if (chosen && chosen !== themeChoice.value) chooseTheme(chosen);
      })
      .catch(() => undefined);
    return onNotification((note) => {
      unread.value += 1;
      toast(note.title, note.body, note.kind === "trade.executed" ? "good" : note.kind === "bot.failed" ? "bad" : "info");
    });
  }, [session.value?.email]);
  // The unread count, read again each time the live socket (re)connects: what arrived
  // while it was down is counted too.
  const live = notificationsConnected.value;
  useEffect(() => {
    api<Page<unknown>>("/notifications", { query: { unread: true, limit: 1 } })
      .then((page) => (unread.value = page.unread ?? page.total))
      .catch(() => undefined);
  }, [live, session.value?.email]);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); document.getElementById("main")?.focus(); }}>
        Skip to content
      </a>
      <header class="topbar">
        <a class="brand" href={href("markets")}>
          TradeBot
        </a>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([path, label]) => (
              <li key={path}>
                <a
                  href={href(path)}
                  aria-current={current === path ? "page" : undefined}
                  data-live={path === "notifications" ? String(live) : undefined}
                  title={path === "notifications" ? (live ? "Live notifications connected" : "Live notifications reconnecting") : undefined}
                >
                  {label}
                  {path === "notifications" && unread.value > 0 ? (
                    <span class="count" aria-label={`${unread.value} unread`}>
                      {unread.value}
                    </span>
                  ) : null}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span class="email">{session.value?.email}</span>
          <button type="button" class="ghost" onClick={() => void logout()}>
            Log out
          </button>
        </div>
      </header>
      <OutageBar />
      <Page />
    </>
  );
}

export function App() {
  return (
    <>
      {loggedIn.value ? <Shell /> : <LoginPage />}
      <Toasts />
    </>
  );
}
