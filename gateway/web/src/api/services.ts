// Which part of the platform answers: each service is marked down by a 502/503/504 (or a
// failed socket) and up again by its next good answer, so a page shows "unavailable" for
// that part only while everything else keeps working.
import { signal } from "@preact/signals";

export type Service = "market" | "user" | "trading" | "analysis" | "notifications";

export const SERVICE_NAMES: Record<Service, string> = {
  market: "Market data",
  user: "Accounts",
  trading: "Trading",
  analysis: "Analysis and backtests",
  notifications: "Notifications",
};

export interface Outage {
  service: Service;
  detail: string;
  since: number;
}

export const outages = signal<Partial<Record<Service, Outage>>>({});

export function serviceOf(path: string): Service | null {
  const first = path.split("?")[0].split("/")[1] ?? "";
  return first in SERVICE_NAMES ? (first as Service) : null;
}

export function markService(service: Service | string | null, up: boolean, detail = ""): void {
  if (!service || !(service in SERVICE_NAMES)) return;
  const key = service as Service;
  const current = outages.value[key];
  if (up) {
    if (!current) return;
    const next = { ...outages.value };
    delete next[key];
    outages.value = next;
  } else if (!current || current.detail !== detail) {
    outages.value = {
      ...outages.value,
      [key]: { service: key, detail, since: current?.since ?? Date.now() },
    };
  }
}
