// The theme (light, dark or the system's), applied at once to <html data-theme>. The
// user's choice lives in their preferences (PUT /user/me/preferences); a copy in
// localStorage paints the right colours before the first API answer.
import { signal } from "@preact/signals";

export type ThemeChoice = "light" | "dark" | "system";
const KEY = "tradebot.theme";

function stored(): ThemeChoice {
  const value = localStorage.getItem(KEY);
  return value === "light" || value === "dark" || value === "system" ? value : "system";
}

export const themeChoice = signal<ThemeChoice>(stored());
/** The theme in effect ("light" or "dark"). */
export const theme = signal<"light" | "dark">("dark");

const media = window.matchMedia("(prefers-color-scheme: light)");

function apply(): void {
  const choice = themeChoice.value;
  const effective = choice === "system" ? (media.matches ? "light" : "dark") : choice;
  document.documentElement.dataset.theme = effective;
  document.querySelector('meta[name="color-scheme"]')?.setAttribute("content", effective);
  theme.value = effective;
}

export function chooseTheme(choice: ThemeChoice): void {
  localStorage.setItem(KEY, choice);
  themeChoice.value = choice;
  apply();
}

media.addEventListener("change", apply);
apply();
