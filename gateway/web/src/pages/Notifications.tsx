// Notifications: the list (all or unread), marked read one by one or all at once, new
// ones arriving live; and the webhooks that forward them, with the reason a URL is refused.
import { useEffect, useState } from "preact/hooks";
import { onNotification, type Notification } from "../api/feeds";
import { ApiError, api } from "../api/http";
import type { Page, Webhook } from "../api/types";
import { Empty, Field, Part, Problem, Spinner, useAction, useLoad } from "../components/ui";
import { when } from "../format";
import { unread } from "../state";
import { toast } from "../toasts";

const KINDS = ["trade.executed", "risk.limit.exceeded", "bot.failed", "info"];

function Webhooks() {
  const hooks = useLoad(() => api<Page<Webhook>>("/notifications/webhooks", { query: { limit: 50 } }), []);
  const [url, setUrl] = useState("");
  const [kinds, setKinds] = useState<string[]>([]);
  const [secret, setSecret] = useState<string | null>(null);
  const add = useAction();
  const change = useAction();
  const urlError = add.error instanceof ApiError ? add.error.field("url") : undefined;
  return (
    <section class="card" aria-labelledby="hooks-title">
      <h2 id="hooks-title">Webhooks</h2>
      <p class="muted">Each notification is POSTed, signed with HMAC-SHA256 of its body in <code>X-TradeBot-Signature</code>, to a public URL.</p>
      {hooks.error ? <Problem error={hooks.error} what="Webhooks" /> : null}
      {change.error ? <Problem error={change.error} /> : null}
      <ul class="plain">
        {(hooks.data?.items ?? []).map((h) => (
          <li key={h.id}>
            <code>{h.url}</code> <span class="muted">{h.kinds.length ? h.kinds.join(", ") : "all kinds"}</span> {h.active ? "" : "(paused)"}{" "}
            <button type="button" class="ghost small" onClick={() => void change.run(async () => {
              await api(`/notifications/webhooks/${h.id}`, { method: "PATCH", body: { active: !h.active } });
              hooks.reload();
            })}>
              {h.active ? "Pause" : "Resume"}
            </button>{" "}
            <button type="button" class="ghost small" onClick={() => void change.run(async () => {
              await api(`/notifications/webhooks/${h.id}`, { method: "DELETE" });
              hooks.reload();
            })}>
              Delete
            </button>
          </li>
        ))}
      </ul>
      {secret ? (
        <p class="notice" role="status">
          Signing secret (shown once, keep it): <code>{secret}</code>
        </p>
      ) : null}
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          const hook = await add.run(() => api<Webhook>("/notifications/webhooks", { body: { url, kinds, active: true } }));
          if (hook) {
            setSecret(hook.secret ?? null);
            setUrl("");
            hooks.reload();
            toast("Webhook added", hook.url, "good");
          }
        }}
      >
        <Field label="Webhook URL" error={urlError} wide>
          <input name="webhook-url" type="url" required placeholder="https://example.com/hooks/tradebot" value={url} onInput={(e) => setUrl(e.currentTarget.value)} aria-describedby={urlError ? "url-why" : undefined} />
        </Field>
        {urlError ? (
          <p id="url-why" class="hint">
            Webhooks may only call public addresses: a URL that resolves to a private, loopback or link-local address is refused, so a webhook cannot reach the platform's own network.
          </p>
        ) : null}
        <fieldset class="inline-checks">
          <legend>Kinds (none: all)</legend>
          {KINDS.map((k) => (
            <label key={k}>
              <input type="checkbox" checked={kinds.includes(k)} onChange={(e) => setKinds(e.currentTarget.checked ? [...kinds, k] : kinds.filter((x) => x !== k))} /> {k}
            </label>
          ))}
        </fieldset>
        {add.error && !urlError ? <Problem error={add.error} what="The webhook was refused" /> : null}
        <button type="submit" disabled={add.busy}>
          Add webhook
        </button>
      </form>
    </section>
  );
}

export function NotificationsPage() {
  const [onlyUnread, setOnlyUnread] = useState(false);
  const list = useLoad(() => api<Page<Notification>>("/notifications", { query: { unread: onlyUnread || undefined, limit: 50 } }), [onlyUnread]);
  const act = useAction();
  useEffect(() => onNotification(() => list.reload()), []);
  useEffect(() => {
    if (list.data?.unread !== undefined) unread.value = list.data.unread;
  }, [list.data]);
  return (
    <main id="main" class="page notifications-page" tabIndex={-1}>
      <h1>Notifications</h1>
      <Part service="notifications" what="Notifications">
        <section class="card" aria-labelledby="list-title">
          <h2 id="list-title">
            {onlyUnread ? "Unread" : "All"} notifications {list.data ? <small>({list.data.unread ?? 0} unread)</small> : null}
          </h2>
          <div class="toolbar">
            <label class="check">
              <input type="checkbox" checked={onlyUnread} onChange={(e) => setOnlyUnread(e.currentTarget.checked)} /> Unread only
            </label>
            <button type="button" onClick={() => void act.run(async () => { await api("/notifications/read-all", { method: "POST" }); list.reload(); })}>
              Mark all read
            </button>
          </div>
          {act.error ? <Problem error={act.error} /> : null}
          {list.error ? <Problem error={list.error} what="Notifications" /> : null}
          {!list.data ? (
            list.error ? null : <Spinner />
          ) : list.data.items.length ? (
            <ul class="notes">
              {list.data.items.map((n) => (
                <li key={n.id} class={n.read_at ? "read" : "unread"}>
                  <div>
                    <strong>{n.title}</strong> <span class="kind">{n.kind}</span>
                    <p>{n.body}</p>
                    <time>{when(n.created_at)}</time>
                  </div>
                  {n.read_at ? null : (
                    <button type="button" class="ghost small" aria-label={`Mark read: ${n.title}`} onClick={() => void act.run(async () => { await api(`/notifications/${n.id}/read`, { method: "POST" }); list.reload(); })}>
                      Mark read
                    </button>
                  )}
                </li>
              ))}
            </ul>
          ) : (
            <Empty>{onlyUnread ? "Nothing unread." : "No notification yet: fills, risk exits and bot failures appear here."}</Empty>
          )}
        </section>
        <Webhooks />
      </Part>
    </main>
  );
}
