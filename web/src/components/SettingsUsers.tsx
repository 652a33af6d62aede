// Settings › Users (users:admin): list, create, change role, disable, delete.
import { useState, type FormEvent } from "react";
import { api, when, type Me } from "@/lib/api";
import { commaList, fieldErrors } from "@/lib/settings";
import { ConfirmButton, Field, LoadNotice, useLoad, FormEnd } from "./SettingsCommon";
import s from "@/styles/settings.module.css";

export const ROLES = ["viewer", "operator", "annotator", "admin"] as const;

interface User {
  id: string;
  username: string;
  role: string;
  cameras: string[] | null;
  disabled: boolean;
  mfa: boolean;
  created_at: string;
}

export function limits(cameras: string[] | null): string {
  return cameras === null ? "all cameras" : cameras.length ? cameras.join(", ") : "none";
}

export default function SettingsUsers({ me }: { me: Me }) {
  const list = useLoad<User[]>("/users");
  return (
    <>
      <LoadNotice
        what="Users"
        scope="users:admin"
        error={list.error}
      />
      {list.error?.status === 403 && me.cameras !== null ? <p className="muted">Managing users needs an account without camera limits.</p> : null}
      {list.data ? (
        <div className={`table-wrap ${s.wrap}`} role="region" aria-label="Users table" tabIndex={0}>
          <table data-testid="users-table">
            <caption className={s.srOnly}>Users</caption>
            <thead>
              <tr>
                <th scope="col">User</th>
                <th scope="col">Role</th>
                <th scope="col">Cameras</th>
                <th scope="col">MFA</th>
                <th scope="col">Disabled</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((u) => (
                <UserRow key={u.id} user={u} self={u.id === me.subject} onChange={list.reload} />
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
      {list.data ? <CreateUser onCreated={list.reload} /> : null}
    </>
  );
}

function UserRow({ user, self, onChange }: { user: User; self: boolean; onChange: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const patch = async (body: Record<string, unknown>) => {
    setBusy(true);
    const r = await api("PATCH", `/users/${encodeURIComponent(user.id)}`, body);
    setBusy(false);
    setError(r.ok ? null : r.error);
    if (r.ok) onChange();
  };
  return (
    <tr>
      <th scope="row">
        {user.username}
        {self ? <span className="muted"> (you)</span> : null}
      </th>
      <td>
        <select
          aria-label={`Role of ${user.username}`}
          value={user.role}
          disabled={busy}
          onChange={(e) => void patch({ role: e.target.value })}
        >
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
      </td>
      <td>{limits(user.cameras)}</td>
      <td>{user.mfa ? <span className="badge badge-ok">on</span> : <span className="muted">off</span>}</td>
      <td>
        <label className={s.check}>
          <input
            type="checkbox"
            checked={user.disabled}
            disabled={busy || self}
            onChange={(e) => void patch({ disabled: e.target.checked })}
          />
          <span className={s.srOnly}>Disable {user.username}</span>
          <span aria-hidden="true">{user.disabled ? "disabled" : "active"}</span>
        </label>
      </td>
      <td>{when(user.created_at)}</td>
      <td>
        {self ? (
          <span className="muted">—</span>
        ) : (
          <ConfirmButton
            label="Delete"
            name={`Delete user ${user.username}`}
            question={`Delete ${user.username}?`}
            confirm="Yes, delete"
            testid={`delete-user-${user.username}`}
            onConfirm={async () => {
              const r = await api("DELETE", `/users/${encodeURIComponent(user.id)}`);
              if (!r.ok) return r.error;
              onChange();
              return null;
            }}
          />
        )}
        {error ? (
          <span className={s.fieldError} role="alert">
            {error}
          </span>
        ) : null}
      </td>
    </tr>
  );
}

const USER_FIELDS = ["username", "password", "role", "cameras"] as const;

function CreateUser({ onCreated }: { onCreated: () => void }) {
  const [username, setUsername] = useState("");
  const [password, setPassword] = useState("");
  const [role, setRole] = useState<string>("viewer");
  const [cameras, setCameras] = useState("");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [rest, setRest] = useState("");
  const [done, setDone] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setDone("");
    const cams = commaList(cameras);
    const body: Record<string, unknown> = { username: username.trim(), password, role, cameras: cams.length ? cams : null };
    const r = await api("POST", "/users", body);
    setBusy(false);
    if (r.ok) {
      setErrors({});
      setRest("");
      setDone(`User ${username.trim()} created.`);
      setUsername("");
      setPassword("");
      setCameras("");
      onCreated();
    } else if (r.status === 422) {
      const f = fieldErrors(r.error, USER_FIELDS);
      setErrors(f.byField);
      setRest(f.rest);
    } else if (r.status === 400) {
      setErrors({ password: r.error }); // a weak password
      setRest("");
    } else if (r.status === 409) {
      setErrors({ username: r.error });
      setRest("");
    } else {
      setErrors({});
      setRest(r.error);
    }
  };

  return (
    <form className={`panel ${s.form}`} onSubmit={submit} data-testid="user-form" noValidate>
      <h3>Create a user</h3>
      <div className={s.fields}>
        <Field label="Username" error={errors.username}>
          {(p) => <input {...p} value={username} onChange={(e) => setUsername(e.target.value)} autoComplete="off" />}
        </Field>
        <Field label="Password" error={errors.password}>
          {(p) => <input {...p} type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="new-password" />}
        </Field>
        <Field label="Role" error={errors.role}>
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
        <Field label="Camera limits" error={errors.cameras} hint="Comma-separated ids or group:name; empty: all cameras.">
          {(p) => <input {...p} value={cameras} onChange={(e) => setCameras(e.target.value)} autoComplete="off" />}
        </Field>
      </div>
      <FormEnd busy={busy} label="Create user" busyLabel="Creating…" rest={rest} done={done} />
    </form>
  );
}
