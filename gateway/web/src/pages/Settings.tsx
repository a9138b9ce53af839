// Settings: the theme (applied at once, kept in the user's preferences), notification
// channels per kind, trading limits, and exchange API keys (added, listed masked, deleted).
import { useEffect, useState } from "preact/hooks";
import { ApiError, api } from "../api/http";
import type { Exchange, ExchangeKey, Me, Page } from "../api/types";
import { Empty, Field, Part, Problem, Spinner, useAction, useLoad } from "../components/ui";
import { when } from "../format";
import { me } from "../state";
import { chooseTheme, themeChoice, type ThemeChoice } from "../theme";
import { toast } from "../toasts";

const KINDS = ["trade.executed", "risk.limit.exceeded", "bot.failed", "info"];
const CHANNELS = ["ws", "webhook"];

function Preferences() {
  const prefs = useLoad(() => api<Me["preferences"]>("/user/me/preferences"), []);
  const save = useAction();
  const [channels, setChannels] = useState<Record<string, string[]>>({});
  useEffect(() => {
    if (prefs.data && !Object.keys(channels).length) setChannels(prefs.data.notifications ?? {});
  }, [prefs.data]);
  const put = (theme: ThemeChoice, notifications: Record<string, string[]>) =>
    save.run(async () => {
      const saved = await api<Me["preferences"]>("/user/me/preferences", { method: "PUT", body: { theme, notifications } });
      prefs.set(saved);
      if (me.value) me.value = { ...me.value, preferences: saved };
      return saved;
    });
  return (
    <section class="card" aria-labelledby="prefs-title">
      <h2 id="prefs-title">Preferences</h2>
      {prefs.error ? <Problem error={prefs.error} what="Preferences" /> : null}
      <fieldset class="inline-checks" role="radiogroup">
        <legend>Theme</legend>
        {(["dark", "light", "system"] as ThemeChoice[]).map((t) => (
          <label key={t}>
            <input
              type="radio"
              name="theme"
              value={t}
              checked={themeChoice.value === t}
              onChange={() => {
                chooseTheme(t); // at once; then kept in the preferences
                void put(t, channels);
              }}
            />{" "}
            {t}
          </label>
        ))}
      </fieldset>
      <fieldset>
        <legend>Notification channels</legend>
        <table class="channels">
          <thead>
            <tr>
              <th scope="col">Kind</th>
              {CHANNELS.map((c) => (
                <th scope="col" key={c}>
                  {c === "ws" ? "In the browser" : "Webhooks"}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {KINDS.map((k) => {
              const chosen = channels[k] ?? CHANNELS;
              return (
                <tr key={k}>
                  <th scope="row">{k}</th>
                  {CHANNELS.map((c) => (
                    <td key={c}>
                      <input
                        type="checkbox"
                        aria-label={`${k} by ${c}`}
                        checked={chosen.includes(c)}
                        onChange={(e) => setChannels({ ...channels, [k]: e.currentTarget.checked ? [...chosen, c] : chosen.filter((x) => x !== c) })}
                      />
                    </td>
                  ))}
                </tr>
              );
            })}
          </tbody>
        </table>
        <button type="button" disabled={save.busy} onClick={async () => (await put(themeChoice.value, channels)) && toast("Preferences saved", "", "good")}>
          Save channels
        </button>
      </fieldset>
      {save.error ? <Problem error={save.error} what="Preferences were not saved" /> : null}
    </section>
  );
}

const LIMITS: [string, string][] = [
  ["max_order_value", "Max order value"],
  ["max_position_value", "Max position value"],
  ["max_open_positions", "Max open positions"],
  ["daily_loss_limit", "Daily loss limit"],
];

function Limits() {
  const limits = useLoad(() => api<Record<string, string | number | null>>("/user/me/limits"), []);
  const [values, setValues] = useState<Record<string, string>>({});
  const save = useAction();
  useEffect(() => {
    if (limits.data && !Object.keys(values).length) setValues(Object.fromEntries(LIMITS.map(([k]) => [k, limits.data![k] === null || limits.data![k] === undefined ? "" : String(limits.data![k])])));
  }, [limits.data]);
  return (
    <form
      class="card"
      aria-labelledby="limits-title"
      onSubmit={async (e) => {
        e.preventDefault();
        const body = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== "").map(([k, v]) => [k, k === "max_open_positions" ? Number(v) : v]));
        const saved = await save.run(() => api<Record<string, string | number | null>>("/user/me/limits", { method: "PUT", body }));
        if (saved) {
          limits.set(saved);
          toast("Trading limits saved", "", "good");
        }
      }}
    >
      <h2 id="limits-title">Trading limits</h2>
      <p class="muted">Empty: no limit. Orders that would break a limit are refused.</p>
      {limits.error ? <Problem error={limits.error} what="Limits" /> : null}
      {/* The fields appear with the saved limits, never to be overwritten while typed in. */}
      {!limits.data && !limits.error ? <Spinner label="Loading limits" /> : null}
      <div class="row" hidden={!limits.data}>
        {LIMITS.map(([key, label]) => (
          <Field key={key} label={label} error={save.error instanceof ApiError ? save.error.field(key) : undefined}>
            <input name={key} inputMode="decimal" value={values[key] ?? ""} onInput={(e) => setValues({ ...values, [key]: e.currentTarget.value })} />
          </Field>
        ))}
      </div>
      {save.error && !(save.error instanceof ApiError && save.error.errors.length) ? <Problem error={save.error} what="Limits were not saved" /> : null}
      <button type="submit" disabled={save.busy || !limits.data}>
        Save limits
      </button>
    </form>
  );
}

function ExchangeKeys() {
  const keys = useLoad(() => api<Page<ExchangeKey>>("/user/me/exchange-keys", { query: { limit: 200 } }), []);
  const exchanges = useLoad(() => api<{ exchanges: Exchange[] }>("/market/exchanges"), []);
  const [form, setForm] = useState({ exchange: "binance", label: "default", api_key: "", api_secret: "", passphrase: "" });
  const add = useAction();
  const remove = useAction();
  const err = (f: string) => (add.error instanceof ApiError ? add.error.field(f) : undefined);
  const known = new Set(["binance", "gate", "mexc", ...(exchanges.data?.exchanges ?? []).map((e) => e.id)].filter((e) => e !== "sim"));
  return (
    <section class="card" aria-labelledby="keys-title">
      <h2 id="keys-title">Exchange API keys</h2>
      <p class="muted">Stored encrypted; the secret never comes back. Live bots and live orders use them.</p>
      {keys.error ? <Problem error={keys.error} what="Exchange keys" /> : null}
      {remove.error ? <Problem error={remove.error} what="Delete" /> : null}
      {keys.data?.items.length ? (
        <table>
          <thead>
            <tr>
              <th scope="col">Exchange</th>
              <th scope="col">Label</th>
              <th scope="col">Key</th>
              <th scope="col">Added</th>
              <th scope="col"><span class="sr-only">Actions</span></th>
            </tr>
          </thead>
          <tbody>
            {keys.data.items.map((k) => (
              <tr key={k.id}>
                <td>{k.exchange}</td>
                <td>{k.label}</td>
                <td><code>{k.api_key_masked}</code>{k.has_passphrase ? " + passphrase" : ""}</td>
                <td>{when(k.created_at)}</td>
                <td>
                  <button type="button" class="ghost small" aria-label={`Delete key ${k.label} on ${k.exchange}`} onClick={() => void remove.run(async () => { await api(`/user/me/exchange-keys/${k.id}`, { method: "DELETE" }); keys.reload(); })}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : keys.data ? (
        <Empty>No key stored.</Empty>
      ) : null}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const body = { ...form, passphrase: form.passphrase || undefined };
          const saved = await add.run(() => api<ExchangeKey>("/user/me/exchange-keys", { body }));
          if (saved) {
            setForm({ ...form, api_key: "", api_secret: "", passphrase: "" });
            keys.reload();
            toast("Key stored", `${saved.exchange} ${saved.api_key_masked}`, "good");
          }
        }}
      >
        <div class="row">
          <Field label="Exchange" error={err("exchange")}>
            <select name="key-exchange" value={form.exchange} onChange={(e) => setForm({ ...form, exchange: e.currentTarget.value })}>
              {[...known].map((x) => (
                <option key={x}>{x}</option>
              ))}
            </select>
          </Field>
          <Field label="Label" error={err("label")}>
            <input name="label" required maxLength={100} value={form.label} onInput={(e) => setForm({ ...form, label: e.currentTarget.value })} />
          </Field>
          <Field label="API key" error={err("api_key")}>
            <input name="api_key" required autocomplete="off" value={form.api_key} onInput={(e) => setForm({ ...form, api_key: e.currentTarget.value })} />
          </Field>
          <Field label="API secret" error={err("api_secret")}>
            <input name="api_secret" type="password" required autocomplete="new-password" value={form.api_secret} onInput={(e) => setForm({ ...form, api_secret: e.currentTarget.value })} />
          </Field>
          <Field label="Passphrase (some exchanges)" error={err("passphrase")}>
            <input name="passphrase" type="password" autocomplete="new-password" value={form.passphrase} onInput={(e) => setForm({ ...form, passphrase: e.currentTarget.value })} />
          </Field>
        </div>
        {add.error && !(add.error instanceof ApiError && add.error.errors.length) ? <Problem error={add.error} what="The key was refused" /> : null}
        <button type="submit" disabled={add.busy}>
          Add key
        </button>
      </form>
    </section>
  );
}

export function SettingsPage() {
  return (
    <main id="main" class="page settings-page" tabIndex={-1}>
      <h1>Settings</h1>
      <Part service="user" what="Account settings">
        <p class="muted">Logged in as {me.value?.email ?? "…"} · permissions {me.value?.permissions.join(", ") ?? "…"}</p>
        <Preferences />
        <Limits />
        <ExchangeKeys />
      </Part>
    </main>
  );
}
