// The two WebSockets: the public price feed (/market/ws), one socket shared by every
// view with subscriptions counted per (exchange, symbol), and the user's notifications
// (/notifications/ws, the access token in the query). Both reconnect with backoff and
// mark their service unavailable while they cannot.
import { signal } from "@preact/signals";
import { markService } from "./services";
import { refreshSession, session } from "./session";
import type { Ticker } from "./types";

export type TickerFrame = Ticker & { type: "ticker" };

export interface CandleFrame {
  type: "candle";
  exchange: string;
  symbol: string;
  timeframe: string;
  candle: [number, number, number, number, number, number];
}

export type MarketFrame = TickerFrame | CandleFrame;
type Listener = (frame: MarketFrame) => void;

function socketUrl(path: string): string {
  return `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}${path}`;
}

/** Whether the price feed socket is open (the pages show "live" or "reconnecting"). */
export const feedConnected = signal(false);

class MarketFeed {
  private socket: WebSocket | null = null;
  private listeners = new Map<string, Set<Listener>>();
  private retry = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  subscribe(exchange: string, symbol: string, listener: Listener): () => void {
    const key = `${exchange}|${symbol}`;
    let set = this.listeners.get(key);
    if (!set) {
      set = new Set();
      this.listeners.set(key, set);
      this.send({ op: "subscribe", exchange, symbols: [symbol] });
    }
    set.add(listener);
    this.connect();
    return () => {
      const current = this.listeners.get(key);
      if (!current) return;
      current.delete(listener);
      if (current.size === 0) {
        this.listeners.delete(key);
        this.send({ op: "unsubscribe", exchange, symbols: [symbol] });
      }
    };
  }

  private send(frame: object): void {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(frame));
  }

  private connect(): void {
    if (this.socket || this.timer) return;
    const socket = new WebSocket(socketUrl("/market/ws"));
    this.socket = socket;
    socket.onopen = () => {
      this.retry = 0;
      feedConnected.value = true;
      markService("market", true);
      const byExchange = new Map<string, string[]>();
      for (const key of this.listeners.keys()) {
        const [exchange, symbol] = key.split("|");
        byExchange.set(exchange, [...(byExchange.get(exchange) ?? []), symbol]);
      }
      for (const [exchange, symbols] of byExchange) {
        for (let i = 0; i < symbols.length; i += 50) {
          this.send({ op: "subscribe", exchange, symbols: symbols.slice(i, i + 50) });
        }
      }
    };
    socket.onmessage = (event) => {
      const frame = JSON.parse(event.data as string) as MarketFrame | { type: string };
      if (frame.type !== "ticker" && frame.type !== "candle") return;
      const market = frame as MarketFrame;
      const set = this.listeners.get(`${market.exchange}|${market.symbol}`);
      if (set) for (const listener of set) listener(market);
    };
    socket.onclose = () => {
      this.socket = null;
      feedConnected.value = false;
      if (this.retry > 0) markService("market", false, "The live price feed cannot be reached.");
      if (this.listeners.size === 0) return;
      const wait = Math.min(10_000, 500 * 2 ** this.retry++);
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.connect();
      }, wait);
    };
  }
}

export const marketFeed = new MarketFeed();

export interface Notification {
  id: string;
  event_id: string | null;
  kind: string;
  title: string;
  body: string;
  data: Record<string, unknown>;
  read_at: string | null;
  created_at: string;
}

type NotificationListener = (note: Notification) => void;
const noteListeners = new Set<NotificationListener>();
export const notificationsConnected = signal(false);

/** Called for every notification pushed while the page is open. */
export function onNotification(listener: NotificationListener): () => void {
  noteListeners.add(listener);
  return () => noteListeners.delete(listener);
}

let noteSocket: WebSocket | null = null;
let noteRetry = 0;
let noteTimer: ReturnType<typeof setTimeout> | undefined;
let noteToken = "";

function connectNotifications(): void {
  const token = session.value?.accessToken;
  clearTimeout(noteTimer);
  if (!token) {
    noteSocket?.close(1000);
    noteSocket = null;
    return;
  }
  if (noteSocket && noteToken === token) return;
  noteSocket?.close(1000);
  noteToken = token;
  const socket = new WebSocket(socketUrl(`/notifications/ws?token=${encodeURIComponent(token)}`));
  noteSocket = socket;
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data as string) as { type: string } & Notification;
    if (frame.type === "connected") {
      noteRetry = 0;
      notificationsConnected.value = true;
      markService("notifications", true);
    } else if (frame.type === "notification") {
      for (const listener of noteListeners) listener(frame);
    }
  };
  socket.onclose = (event) => {
    if (noteSocket !== socket) return; // replaced by a socket with a newer token
    noteSocket = null;
    notificationsConnected.value = false;
    if (!session.value) return;
    if (event.code === 4401) {
      // Token expired or session ended: a refresh brings a new token (and a reconnect
      // through the session effect) or sends the user to the login page.
      void refreshSession();
      return;
    }
    if (event.code !== 1000) {
      markService("notifications", false, "Live notifications cannot be reached.");
    }
    noteTimer = setTimeout(connectNotifications, Math.min(15_000, 1000 * 2 ** noteRetry++));
  };
}

session.subscribe(() => connectNotifications());
