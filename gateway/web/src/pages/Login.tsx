// Log in, or sign up and be logged in at once.
import { useState } from "preact/hooks";
import { api } from "../api/http";
import { sessionNotice, startSession } from "../api/session";
import { Field, Problem, useAction } from "../components/ui";
import { ApiError } from "../api/http";

interface Pair {
  access_token: string;
  refresh_token: string;
  expires_in: number;
}

export function LoginPage() {
  const [mode, setMode] = useState<"login" | "register">("login");
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const action = useAction();
  const error = action.error instanceof ApiError ? action.error : null;

  async function submit(event: Event) {
    event.preventDefault();
    await action.run(async () => {
      if (mode === "register") {
        await api("/user/auth/register", { body: { email, password }, auth: false });
      }
      const pair = await api<Pair>("/user/auth/login", { body: { email, password }, auth: false });
      startSession(email, pair);
      if (!location.hash || location.hash === "#/") location.hash = "#/markets";
    });
  }

  const registering = mode === "register";
  return (
    <main id="main" class="login" tabIndex={-1}>
      <form class="card login-card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title">{registering ? "Create your account" : "Log in to TradeBot"}</h1>
        {sessionNotice.value && !action.error ? <p class="notice" role="status">{sessionNotice.value}</p> : null}
        <Field label="Email" error={error?.field("email")}>
          <input type="email" name="email" autocomplete="username" required value={email} onInput={(e) => setEmail(e.currentTarget.value)} />
        </Field>
        <Field
          label="Password"
          hint={registering ? "10 to 128 characters." : undefined}
          error={error?.field("password")}
        >
          <input
            type="password"
            name="password"
            autocomplete={registering ? "new-password" : "current-password"}
            required
            minLength={registering ? 10 : undefined}
            maxLength={128}
            value={password}
            onInput={(e) => setPassword(e.currentTarget.value)}
          />
        </Field>
        {error && !error.errors.length ? <Problem error={error} /> : null}
        {action.error && !(action.error instanceof ApiError) ? <Problem error={action.error} /> : null}
        <button type="submit" class="primary" disabled={action.busy}>
          {action.busy ? "Please wait…" : registering ? "Sign up" : "Log in"}
        </button>
        <p class="switch">
          {registering ? "Already have an account?" : "New to TradeBot?"}{" "}
          <button type="button" class="link" onClick={() => { setMode(registering ? "login" : "register"); action.setError(null); }}>
            {registering ? "Log in" : "Create an account"}
          </button>
        </p>
      </form>
    </main>
  );
}
