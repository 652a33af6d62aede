// Settings › API keys (apikeys:write): list, create (the key is shown once), revoke.
import { useEffect, useRef, useState, type FormEvent } from "react";
import { api, when, type Me } from "@/lib/api";
import { commaList, fieldErrors } from "@/lib/settings";
import { ConfirmButton, Field, LoadNotice, useLoad } from "./SettingsCommon";
import { ROLES, limits } from "./SettingsUsers";
import s from "@/styles/settings.module.css";

interface ApiKey {
  id: string;
  name: string;
  prefix: string;
  role: string;
  scopes: string[];
  cameras: string[] | null;
  created_at: string;
  revoked_at: string | null;
  last_used_at: string | null;
}

interface Created extends ApiKey {
  key: string;
}

export default function SettingsKeys({ me }: { me: Me }) {
  const list = useLoad<ApiKey[]>("/apikeys");
  const [created, setCreated] = useState<Created | null>(null);
  return (
    <>
      <LoadNotice what="API keys" scope="apikeys:write" error={list.error} />
      {created ? <NewKey created={created} onDone={() => setCreated(null)} /> : null}
      {list.data ? (
        list.data.length ? (
          <div className={`table-wrap ${s.wrap}`} role="region" aria-label="API keys table" tabIndex={0}>
            <table data-testid="keys-table">
              <caption className={s.srOnly}>API keys</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Prefix</th>
                  <th scope="col">Role</th>
                  <th scope="col">Cameras</th>
                  <th scope="col">Created</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Status</th>
                </tr>
              </thead>
              <tbody>
                {list.data.map((k) => (
                  <tr key={k.id}>
                    <th scope="row">{k.name}</th>
                    <td className={s.mono}>{k.prefix}…</td>
                    <td>
                      {k.role} <span className="muted">({k.scopes.length} scopes)</span>
                    </td>
                    <td>{limits(k.cameras)}</td>
                    <td>{when(k.created_at)}</td>
                    <td>{when(k.last_used_at)}</td>
                    <td>
                      {k.revoked_at ? (
                        <span className="badge badge-bad">revoked {when(k.revoked_at)}</span>
                      ) : (
                        <ConfirmButton
                          label="Revoke"
                          name={`Revoke API key ${k.name}`}
                          question={`Revoke ${k.name}? Clients using it stop working.`}
                          confirm="Yes, revoke"
                          testid={`revoke-key-${k.id}`}
                          onConfirm={async () => {
                            const r = await api("DELETE", `/apikeys/${encodeURIComponent(k.id)}`);
                            if (!r.ok) return r.error;
                            list.reload();
                            return null;
                          }}
                        />
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <p className="muted">No API keys yet.</p>
        )
      ) : null}
      {list.data ? (
        <CreateKey
          me={me}
          onCreated={(c) => {
            setCreated(c);
            list.reload();
          }}
        />
      ) : null}
    </>
  );
}

function NewKey({ created, onDone }: { created: Created; onDone: () => void }) {
  const [copied, setCopied] = useState("");
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => box.current?.focus(), []);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(created.key);
      setCopied("Copied to the clipboard.");
    } catch {
      setCopied("Copying failed: select the key and copy it by hand.");
    }
  };
  return (
    <div ref={box} tabIndex={-1} className={`panel ${s.secretBox}`} data-testid="new-key" aria-labelledby="new-key-title">
      <h3 id="new-key-title">New API key “{created.name}”</h3>
      <p className={s.warning}>Copy it now: this key will not be shown again (only its hash is kept).</p>
      <div className={s.secretRow}>
        <code className={s.secret} data-testid="new-key-value">
          {created.key}
        </code>
        <button type="button" onClick={copy}>
          Copy key
        </button>
      </div>
      <p role="status" className={s.ok}>
        {copied}
      </p>
      <button type="button" className="secondary" onClick={onDone}>
        I have stored it — hide the key
      </button>
    </div>
  );
}

const KEY_FIELDS = ["name", "role", "cameras", "scopes"] as const;

function CreateKey({ me, onCreated }: { me: Me; onCreated: (c: Created) => void }) {
  const [name, setName] = useState("");
  const [role, setRole] = useState<string>("viewer");
  const [cameras, setCameras] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [rest, setRest] = useState("");
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    const cams = commaList(cameras);
    const r = await api<Created>("POST", "/apikeys", { name: name.trim(), role, cameras: cams.length ? cams : null });
    setBusy(false);
    if (r.ok) {
      setErrors({});
      setRest("");
      setName("");
      setCameras("");
      onCreated(r.data);
    } else if (r.status === 422) {
      const f = fieldErrors(r.error, KEY_FIELDS);
      setErrors(f.byField);
      setRest(f.rest);
    } else {
      setErrors({});
      setRest(r.error);
    }
  };
  return (
    <form className={`panel ${s.form}`} onSubmit={submit} data-testid="key-form" noValidate>
      <h3>Create an API key</h3>
      <div className={s.fields}>
        <Field label="Name" error={errors.name}>
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />}
        </Field>
        <Field label="Role" error={errors.role} hint="At most your own role.">
          {(p) => (
            <select {...p} value={role} onChange={(e) => setRole(e.target.value)}>
              {ROLES.map((r) => (
                <option key={r} value={r}>
                  {r}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field
          label="Camera limits"
          error={errors.cameras}
          hint={me.cameras === null ? "Comma-separated ids or group:name; empty: all cameras." : "Comma-separated; empty: your own limits."}
        >
          {(p) => <input {...p} value={cameras} onChange={(e) => setCameras(e.target.value)} autoComplete="off" />}
        </Field>
      </div>
      <div className="row">
        <button type="submit" disabled={busy}>
          {busy ? "Creating…" : "Create key"}
        </button>
      </div>
      {rest ? (
        <p className={s.fieldError} role="alert">
          {rest}
        </p>
      ) : null}
    </form>
  );
}
