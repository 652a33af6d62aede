// Settings › Cameras: the list; with cameras:write, add (POST /cameras) and remove (DELETE).
import { useState, type FormEvent } from "react";
import { api, can, type Me } from "@/lib/api";
import { commaList, fieldErrors } from "@/lib/settings";
import { ConfirmButton, Field, LoadNotice, useLoad, FormEnd } from "./SettingsCommon";
import s from "@/styles/settings.module.css";

interface Camera {
  id: string;
  name: string | null;
  source: string;
  detect_fps: number;
  enabled: boolean;
  detect: boolean;
  status: { state: string; last_error?: string | null };
}

const FIELDS = ["id", "name", "source", "detect_fps", "groups", "enabled", "detect"] as const;

function stateBadge(state: string): string {
  if (state === "running") return "badge badge-ok";
  if (state === "failed" || state === "unschedulable") return "badge badge-bad";
  return "badge badge-warn";
}

export default function SettingsCameras({ me }: { me: Me }) {
  const list = useLoad<Camera[]>("/cameras");
  const writer = can(me, "cameras:write");
  return (
    <>
      <LoadNotice what="Cameras" scope="cameras:read" error={list.error} />
      {list.data ? (
        list.data.length ? (
          <div className={`table-wrap ${s.wrap}`} role="region" aria-label="Cameras table" tabIndex={0}>
            <table data-testid="cameras-table">
              <caption className={s.srOnly}>Cameras</caption>
              <thead>
                <tr>
                  <th scope="col">Id</th>
                  <th scope="col">Name</th>
                  <th scope="col">Source</th>
                  <th scope="col">Detect fps</th>
                  <th scope="col">State</th>
                  {writer ? <th scope="col">Actions</th> : null}
                </tr>
              </thead>
              <tbody>
                {list.data.map((c) => (
                  <tr key={c.id}>
                    <th scope="row" className={s.mono}>
                      {c.id}
                    </th>
                    <td>{c.name ?? <span className="muted">—</span>}</td>
                    <td className={s.wrapAny}>{c.source}</td>
                    <td>{c.detect_fps}</td>
                    <td>
                      <span className={stateBadge(c.status.state)}>{c.enabled ? c.status.state : "disabled"}</span>
                    </td>
                    {writer ? (
                      <td>
                        <ConfirmButton
                          label="Remove"
                          name={`Remove camera ${c.id}`}
                          question={`Remove ${c.id}? Its events are kept.`}
                          confirm="Yes, remove"
                          testid={`remove-camera-${c.id}`}
                          onConfirm={async () => {
                            const r = await api("DELETE", `/cameras/${encodeURIComponent(c.id)}`);
                            if (!r.ok) return r.error;
                            list.reload();
                            return null;
                          }}
                        />
                      </td>
                    ) : null}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        ) : (
          <p className="muted">No cameras{me.cameras ? " you may see" : ""} yet.</p>
        )
      ) : null}
      {writer ? <AddCamera onAdded={list.reload} /> : <p className="muted">Adding or removing cameras needs the cameras:write permission.</p>}
    </>
  );
}

function AddCamera({ onAdded }: { onAdded: () => void }) {
  const [id, setId] = useState("");
  const [name, setName] = useState("");
  const [source, setSource] = useState("");
  const [fps, setFps] = useState("5");
  const [groups, setGroups] = useState("");
  const [enabled, setEnabled] = useState(true);
  const [detect, setDetect] = useState(true);
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [rest, setRest] = useState("");
  const [done, setDone] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setDone("");
    const body: Record<string, unknown> = { id: id.trim(), source: source.trim(), enabled, detect };
    if (name.trim()) body.name = name.trim();
    const f = Number(fps);
    body.detect_fps = fps.trim() === "" || Number.isNaN(f) ? fps : f;
    const g = commaList(groups);
    if (g.length) body.groups = g;
    const r = await api("POST", "/cameras", body);
    setBusy(false);
    if (r.ok) {
      setErrors({});
      setRest("");
      setDone(`Camera ${id.trim()} added; it is starting.`);
      setId("");
      setName("");
      setSource("");
      setGroups("");
      onAdded();
      return;
    }
    if (r.status === 422) {
      const { byField, rest: other } = fieldErrors(r.error, FIELDS);
      setErrors(byField);
      setRest(other);
    } else if (r.status === 409) {
      setErrors({ id: r.error });
      setRest("");
    } else {
      setErrors({});
      setRest(r.error);
    }
  };

  return (
    <form className={`panel ${s.form}`} onSubmit={submit} data-testid="camera-form" noValidate>
      <h3>Add a camera</h3>
      <div className={s.fields}>
        <Field label="Id" error={errors.id} hint="Lower case letters, digits, - and _; up to 64.">
          {(p) => <input {...p} name="id" required value={id} onChange={(e) => setId(e.target.value)} autoComplete="off" />}
        </Field>
        <Field label="Name (optional)" error={errors.name}>
          {(p) => <input {...p} name="name" value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />}
        </Field>
        <Field label="Source" error={errors.source} hint="rtsp://, http(s):// URL or a file path.">
          {(p) => <input {...p} name="source" required value={source} onChange={(e) => setSource(e.target.value)} autoComplete="off" className={s.wide} />}
        </Field>
        <Field label="Detect fps" error={errors.detect_fps}>
          {(p) => <input {...p} name="detect_fps" type="number" min="0.1" max="30" step="0.1" value={fps} onChange={(e) => setFps(e.target.value)} />}
        </Field>
        <Field label="Groups (optional)" error={errors.groups} hint="Comma-separated, e.g. lobby, outdoor.">
          {(p) => <input {...p} name="groups" value={groups} onChange={(e) => setGroups(e.target.value)} autoComplete="off" />}
        </Field>
      </div>
      <div className={s.checks}>
        <label className={s.check}>
          <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} /> Enabled
        </label>
        <label className={s.check}>
          <input type="checkbox" checked={detect} onChange={(e) => setDetect(e.target.checked)} /> Run the detector
        </label>
      </div>
      {errors.enabled || errors.detect ? (
        <p className={s.fieldError} role="alert">
          {[errors.enabled, errors.detect].filter(Boolean).join("; ")}
        </p>
      ) : null}
      <FormEnd busy={busy} label="Add camera" busyLabel="Adding…" rest={rest} done={done} />
    </form>
  );
}
