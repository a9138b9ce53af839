// Small building blocks shared by the pages: loading a resource with its error, the
// error of a call in words, a part of the page that is unavailable, form fields.
import { cloneElement, isValidElement, type ComponentChildren, type VNode } from "preact";
import { useCallback, useEffect, useId, useRef, useState } from "preact/hooks";
import { ApiError, describe } from "../api/http";
import { outages, SERVICE_NAMES, type Service } from "../api/services";

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  set: (value: T) => void;
}

/** Load with `fetcher` when `deps` change; `every` ms to poll (paused while hidden). */
export function useLoad<T>(fetcher: () => Promise<T>, deps: unknown[], every = 0): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const latest = useRef(fetcher);
  latest.current = fetcher;
  const reload = useCallback(() => {
    const mine = ++generation.current;
    setLoading(true);
    latest
      .current()
      .then((value) => {
        if (mine !== generation.current) return;
        setData(value);
        setError(null);
      })
      .catch((err: unknown) => {
        if (mine === generation.current) setError(err);
      })
      .finally(() => {
        if (mine === generation.current) setLoading(false);
      });
  }, []);
  useEffect(() => {
    reload();
    if (!every) return;
    const timer = setInterval(() => {
      if (document.visibilityState === "visible") reload();
    }, every);
    return () => clearInterval(timer);
  }, deps);
  return { data, error, loading, reload, set: setData };
}

/** An error of an API call, in words, where the call was made. */
export function Problem({ error, what }: { error: unknown; what?: string }) {
  if (!error) return null;
  const service = error instanceof ApiError ? (error.service as Service | null) : null;
  const down = error instanceof ApiError && (error.status === 0 || error.status >= 502);
  if (down && service) return <Unavailable service={service} what={what} />;
  return (
    <p class="problem" role="alert">
      {what ? <strong>{what}: </strong> : null}
      <span class="pre">{describe(error)}</span>
    </p>
  );
}

/** "This part is unavailable" for one service, with what it said. */
export function Unavailable({ service, what }: { service: Service; what?: string }) {
  const outage = outages.value[service];
  return (
    <div class="unavailable" role="status" data-service={service}>
      <strong>{SERVICE_NAMES[service]} unavailable.</strong>{" "}
      {what ? `${what} cannot be shown right now. ` : ""}
      {outage?.detail ?? "The service does not answer."} It will come back on its own; the rest of the
      dashboard keeps working.
    </div>
  );
}

/** Shows `children` unless `service` is known to be down (then the notice). */
export function Part({ service, what, children }: { service: Service; what: string; children: ComponentChildren }) {
  return (
    <section class="part" aria-label={what}>
      {outages.value[service] ? <Unavailable service={service} what={what} /> : null}
      {children}
    </section>
  );
}

/** A labelled control: the label names it, the hint and the error describe it. */
export function Field(props: { label: string; hint?: string; error?: string; children: ComponentChildren; wide?: boolean }) {
  const id = useId();
  const described = [props.hint ? `${id}-hint` : "", props.error ? `${id}-error` : ""].filter(Boolean).join(" ");
  const control = isValidElement(props.children)
    ? cloneElement(props.children as VNode<Record<string, unknown>>, {
        id,
        "aria-describedby": described || undefined,
        "aria-invalid": props.error ? "true" : undefined,
      })
    : props.children;
  return (
    <div class={`field${props.wide ? " wide" : ""}${props.error ? " invalid" : ""}`}>
      <label class="label" for={id}>
        {props.label}
      </label>
      {control}
      {props.hint ? (
        <small class="hint" id={`${id}-hint`}>
          {props.hint}
        </small>
      ) : null}
      {props.error ? (
        <small class="field-error pre" id={`${id}-error`} role="alert">
          {props.error}
        </small>
      ) : null}
    </div>
  );
}

export function Spinner({ label = "Loading" }: { label?: string }) {
  return (
    <span class="spinner" role="status">
      {label}…
    </span>
  );
}

export function Empty({ children }: { children: ComponentChildren }) {
  return <p class="empty">{children}</p>;
}

export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge badge-${status}`}>{status}</span>;
}

/** Run an action with a busy flag and its error kept for display. */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const run = useCallback(async <T,>(action: () => Promise<T>): Promise<T | undefined> => {
    setBusy(true);
    setError(null);
    try {
      return await action();
    } catch (err) {
      setError(err);
      return undefined;
    } finally {
      setBusy(false);
    }
  }, []);
  return { busy, error, run, setError };
}
