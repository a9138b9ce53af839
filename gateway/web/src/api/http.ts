// Every call to the gateway goes through `api()`: the access token attached, refreshed
// silently once on a 401, problem details (RFC 9457) turned into an ApiError the page
// shows where the call was made, and each service's availability tracked from answers.
import { session, refreshSession, endSession } from "./session";
import { markService, serviceOf } from "./services";

export interface FieldError {
  loc: (string | number)[];
  msg: string;
  type?: string;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    readonly errors: FieldError[] = [],
    readonly service: string | null = null,
    readonly retryAfter: number | null = null,
    readonly extra: Record<string, unknown> = {},
  ) {
    super(detail || title);
  }

  /** The refusal in words, for the place where the call was made. */
  get words(): string {
    if (this.status === 0) return this.detail;
    const fields = this.errors
      .map((e) => `${fieldName(e.loc)}: ${e.msg}`)
      .join("; ");
    const base = this.detail && this.detail !== this.title ? this.detail : this.title;
    return fields ? `${base} ${fields}` : base;
  }

  /** The messages of the errors on one field (body.<name>), if any. */
  field(name: string): string | undefined {
    const messages = this.errors.filter((e) => e.loc.includes(name)).map((e) => e.msg);
    return messages.length ? messages.join("; ") : undefined;
  }
}

function fieldName(loc: (string | number)[]): string {
  const parts = loc.filter((p) => p !== "body" && p !== "query");
  return parts.length ? parts.join(".") : String(loc[loc.length - 1] ?? "input");
}

type Json = Record<string, unknown> | unknown[] | null;

interface Options {
  method?: string;
  body?: unknown;
  query?: Record<string, string | number | boolean | undefined | null>;
  auth?: boolean; // default: true
  signal?: AbortSignal;
}

export function url(path: string, query?: Options["query"]): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function send(path: string, opts: Options): Promise<Response> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const token = session.value?.accessToken;
  if (opts.auth !== false && token) headers.authorization = `Bearer ${token}`;
  return fetch(url(path, opts.query), {
    method: opts.method ?? (opts.body === undefined ? "GET" : "POST"),
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    signal: opts.signal,
  });
}

export async function api<T = Json>(path: string, opts: Options = {}): Promise<T> {
  const service = serviceOf(path);
  let response: Response;
  try {
    response = await send(path, opts);
    if (response.status === 401 && opts.auth !== false && session.value) {
      // The access token ran out (or the gateway restarted with the session gone): one
      // silent refresh, then the same call again; a refused refresh ends the session.
      if (await refreshSession()) response = await send(path, opts);
      if (response.status === 401) {
        endSession("Your session has ended; log in again.");
      }
    }
  } catch (err) {
    if ((err as Error).name === "AbortError") throw err;
    markService(service, false, "The gateway cannot be reached.");
    throw new ApiError(0, "Network error", "The gateway cannot be reached; check that it runs.", [], service);
  }
  if (response.status === 204) {
    markService(service, true);
    return undefined as T;
  }
  const text = await response.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (response.ok) {
    markService(service, true);
    return body as T;
  }
  const problem = (body ?? {}) as Record<string, unknown>;
  const retry = Number(response.headers.get("retry-after"));
  const error = new ApiError(
    response.status,
    String(problem.title ?? response.statusText ?? "Error"),
    String(problem.detail ?? ""),
    Array.isArray(problem.errors) ? (problem.errors as FieldError[]) : [],
    service,
    Number.isFinite(retry) && retry > 0 ? retry : null,
    problem,
  );
  if (response.status === 503 || response.status === 502 || response.status === 504) {
    markService(service, false, error.words);
  } else {
    markService(service, true);
  }
  throw error;
}

/** The message of any error, in words. */
export function describe(err: unknown): string {
  if (err instanceof ApiError) return err.words;
  if (err instanceof Error) return err.message;
  return String(err);
}
