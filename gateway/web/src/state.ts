// State the shell and the pages share: who is logged in and the unread count.
import { signal } from "@preact/signals";
import type { Me } from "./api/types";

export const me = signal<Me | null>(null);
export const unread = signal(0);
