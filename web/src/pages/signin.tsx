import Head from "next/head";
import { useRouter } from "next/router";
import { useState, type FormEvent } from "react";
import { api } from "@/lib/api";

/** Where to go after signing in: only a path of this site (never another origin). */
function safeNext(raw: unknown): string {
  const next = typeof raw === "string" ? raw : "/";
  return next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : "/";
}

export default function SignIn() {
  const router = useRouter();
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [withCode, setWithCode] = useState(false);

  const submit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    const form = new FormData(event.currentTarget);
    if (!form.get("otp")) form.delete("otp");
    const r = await api("POST", "/auth/session", form, { redirectOn401: false });
    setBusy(false);
    if (r.ok) {
      location.assign(safeNext(router.query.next));
      return;
    }
    setError(r.status === 401 ? "Wrong username, password or one-time code." : r.error);
    setWithCode(true);
  };

  return (
    <main id="main" className="signin">
      <Head>
        <title>Sign in · Sentinel</title>
      </Head>
      <h1>Sentinel</h1>
      <form onSubmit={submit} aria-describedby={error ? "signin-error" : undefined}>
        <label>
          Username
          <input name="username" autoComplete="username" required maxLength={128} autoFocus />
        </label>
        <label>
          Password
          <input name="password" type="password" autoComplete="current-password" required maxLength={1024} />
        </label>
        {withCode ? (
          <label>
            One-time code (if you enrolled an authenticator)
            <input
              name="otp"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9]{6}"
              maxLength={6}
            />
          </label>
        ) : (
          <button type="button" className="link" onClick={() => setWithCode(true)}>
            I use a one-time code
          </button>
        )}
        {error ? (
          <p id="signin-error" className="notice notice-error" role="alert">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}

SignIn.public = true;
