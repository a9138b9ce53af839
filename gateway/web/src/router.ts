// Hash routes (`/#/bots/<id>`): the gateway serves only `/` and `/assets/*` for the
// dashboard, so no client route can collide with an API path (/market, /user, ...).
import { signal } from "@preact/signals";

export interface Route {
  path: string[]; // ["bots", "<id>"]
  query: URLSearchParams;
}

function parse(): Route {
  const raw = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = raw.split("?");
  return { path: path.split("/").filter(Boolean).map(decodeURIComponent), query: new URLSearchParams(query) };
}

export const route = signal<Route>(parse());

window.addEventListener("hashchange", () => {
  route.value = parse();
});

export function href(...parts: (string | number)[]): string {
  return "#/" + parts.map((p) => encodeURIComponent(String(p))).join("/");
}

export function go(...parts: (string | number)[]): void {
  location.hash = href(...parts).slice(1);
}
