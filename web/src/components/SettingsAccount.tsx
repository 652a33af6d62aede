// Settings › My account: who am I, and TOTP enrolment (the secret and otpauth:// URI as text).
import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, type Me } from "@/lib/api";
import { Field } from "./SettingsCommon";
import s from "@/styles/settings.module.css";

interface Enrollment {
  secret: string;
  provisioning_uri: string;
}

export default function SettingsAccount({ me }: { me: Me }) {
  return (
    <>
      <dl className={s.facts} data-testid="whoami">
        <dt>Account id</dt>
        <dd className={s.mono}>{me.subject}</dd>
        <dt>Kind</dt>
        <dd>{me.kind}</dd>
        <dt>Role</dt>
        <dd>{me.role ?? "—"}</dd>
        <dt>Cameras</dt>
        <dd>{me.cameras === null ? "all cameras" : me.cameras.length ? me.cameras.join(", ") : "none"}</dd>
        <dt>Permissions</dt>
        <dd>
          <ul className={s.scopes}>
            {[...me.scopes].sort().map((sc) => (
              <li key={sc} className="badge">
                {sc}
              </li>
            ))}
          </ul>
        </dd>
      </dl>
      <h3>One-time codes (two-factor sign-in)</h3>
      {me.kind === "user" ? <Totp /> : <p className="muted">Only users (not API keys) enrol a one-time-code device.</p>}
    </>
  );
}

function Totp() {
  const [enrol, setEnrol] = useState<Enrollment | null>(null);
  const [code, setCode] = useState("");
  const [error, setError] = useState("");
  const [codeError, setCodeError] = useState("");
  const [info, setInfo] = useState("");
  const [busy, setBusy] = useState(false);
  const [done, setDone] = useState(false);
  const codeBox = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (enrol) codeBox.current?.focus();
  }, [enrol]);

  const start = async () => {
    setBusy(true);
    setError("");
    setInfo("");
    const r = await api<Enrollment>("POST", "/auth/mfa/enroll");
    setBusy(false);
    if (r.ok) setEnrol(r.data);
    else if (r.status === 409) setInfo("A one-time-code device is already enrolled for this account.");
    else setError(r.error);
  };

  const confirm = async (e: FormEvent) => {
    e.preventDefault();
    if (!/^\d{6}$/.test(code)) {
      setCodeError("Enter the 6 digits your app shows.");
      return;
    }
    setBusy(true);
    const r = await api("POST", "/auth/mfa/confirm", { code });
    setBusy(false);
    if (r.ok) {
      setDone(true);
      setEnrol(null);
      setCodeError("");
    } else setCodeError(r.status === 422 ? "Enter the 6 digits your app shows." : r.error);
  };

  if (done) {
    return (
      <p role="status" className={s.ok} data-testid="mfa-done">
        Done: signing in now also asks for a one-time code.
      </p>
    );
  }
  return (
    <div data-testid="mfa">
      {!enrol ? (
        <>
          <p className="muted">Add an authenticator app (TOTP); sign-in will then ask for its 6-digit code.</p>
          <button type="button" onClick={start} disabled={busy}>
            Set up a one-time-code app
          </button>
          <p role="status">{info}</p>
          {error ? (
            <p className={s.fieldError} role="alert">
              {error}
            </p>
          ) : null}
        </>
      ) : (
        <div ref={codeBox} tabIndex={-1} className={`panel ${s.secretBox}`} aria-labelledby="mfa-title">
          <h4 id="mfa-title" className={s.formTitle}>
            Add this account to your app
          </h4>
          <p>Enter the secret in your authenticator app (or open the link on the device that has the app), then type the code it shows.</p>
          <p className={s.warning}>Keep the secret private: anyone who has it can make your codes.</p>
          <dl className={s.facts}>
            <dt>Secret</dt>
            <dd>
              <code className={s.secret} data-testid="mfa-secret">
                {enrol.secret}
              </code>
            </dd>
            <dt>Link</dt>
            <dd>
              <code className={s.secret} data-testid="mfa-uri">
                {enrol.provisioning_uri}
              </code>
            </dd>
          </dl>
          <form onSubmit={confirm} className={s.form} noValidate>
            <div className={s.fields}>
              <Field label="6-digit code" error={codeError}>
                {(p) => (
                  <input
                    {...p}
                    value={code}
                    onChange={(e) => setCode(e.target.value.replace(/\D/g, "").slice(0, 6))}
                    inputMode="numeric"
                    autoComplete="one-time-code"
                    pattern="\d{6}"
                    maxLength={6}
                    className={s.code}
                    data-testid="mfa-code"
                  />
                )}
              </Field>
            </div>
            <div className="row">
              <button type="submit" disabled={busy}>
                Confirm
              </button>
              <button type="button" className="secondary" onClick={() => setEnrol(null)}>
                Cancel
              </button>
            </div>
          </form>
        </div>
      )}
    </div>
  );
}
