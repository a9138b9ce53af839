// Toasts: short-lived messages in a live region (new notifications, done actions).
import { signal } from "@preact/signals";

export interface Toast {
  id: number;
  title: string;
  body: string;
  tone: "info" | "good" | "bad";
}

export const toasts = signal<Toast[]>([]);
let next = 1;

export function toast(title: string, body = "", tone: Toast["tone"] = "info", ms = 6000): void {
  const id = next++;
  toasts.value = [...toasts.value.slice(-4), { id, title, body, tone }];
  setTimeout(() => dismiss(id), ms);
}

export function dismiss(id: number): void {
  toasts.value = toasts.value.filter((t) => t.id !== id);
}
