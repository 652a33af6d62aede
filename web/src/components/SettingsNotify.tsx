// Settings › Notifications: alert subscriptions (alerts:read to list, alerts:write to change)
// and browser push on this device (lib/push.ts).
import { useEffect, useState, type FormEvent } from "react";
import { api, can, csrfToken, type Me } from "@/lib/api";
import { disablePush, enablePush } from "@/lib/push";
import { commaList, fieldErrors } from "@/lib/settings";
import { ConfirmButton, Field, LoadNotice, useLoad, FormEnd } from "./SettingsCommon";
import s from "@/styles/settings.module.css";

const CHANNELS = ["email", "webhook", "sms", "mqtt", "apprise"] as const;
const SEVERITIES = ["info", "low", "medium", "high", "critical"] as const;
const TARGET_HINT: Record<string, string> = {
  email: "One e-mail address.",
  webhook: "An https:// URL.",
  sms: "An E.164 number: + and digits.",
  mqtt: "A topic prefix (- for the default).",
  apprise: "An Apprise URL (ntfy://, tgram://, slack://…).",
};

interface Subscription {
  id: string;
  name: string;
  enabled: boolean;
  recipient: string;
  channel: string;
  target: string;
  cameras: string[];
  camera_groups: string[];
  labels: string[];
  min_severity: string;
  created_by: string;
}

export default function SettingsNotify({ me }: { me: Me }) {
  const list = useLoad<Subscription[]>("/notifications/subscriptions");
  const writer = can(me, "alerts:write");
  return (
    <>
      <h3>Browser notifications</h3>
      <PushControls />
      <h3>Alert subscriptions</h3>
      <LoadNotice
        what="Subscriptions"
        scope="alerts:read"
        error={list.error}
        absent="This server has no notification API: subscriptions cannot be managed here."
      />
      {list.data ? (
        list.data.length ? (
          <div className={`table-wrap ${s.wrap}`} role="region" aria-label="Subscriptions table" tabIndex={0}>
            <table data-testid="subscriptions-table">
              <caption className={s.srOnly}>Alert subscriptions</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Recipient</th>
                  <th scope="col">Channel</th>
                  <th scope="col">Target</th>
                  <th scope="col">Cameras</th>
                  <th scope="col">Labels</th>
                  <th scope="col">From severity</th>
                  {writer ? <th scope="col">Actions</th> : null}
                </tr>
              </thead>
              <tbody>
                {list.data.map((sub) => (
                  <tr key={sub.id}>
                    <th scope="row">
                      {sub.name}
                      {sub.enabled ? null : <span className="muted"> (off)</span>}
                    </th>
                    <td>{sub.recipient}</td>
                    <td>{sub.channel}</td>
                    <td className={s.wrapAny}>{sub.target}</td>
                    <td>{[...sub.cameras, ...sub.camera_groups.map((g) => `group:${g}`)].join(", ") || "all"}</td>
                    <td>{sub.labels.join(", ") || "all"}</td>
                    <td>{sub.min_severity}</td>
                    {writer ? (
                      <td>
                        <ConfirmButton
                          label="Delete"
                          name={`Delete subscription ${sub.name}`}
                          question={`Delete ${sub.name}?`}
                          confirm="Yes, delete"
                          testid={`delete-sub-${sub.id}`}
                          onConfirm={async () => {
                            const r = await api("DELETE", `/notifications/subscriptions/${encodeURIComponent(sub.id)}`);
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
          <p className="muted">No subscriptions{me.cameras ? " for your cameras" : ""}.</p>
        )
      ) : null}
      {list.data && writer ? <AddSubscription me={me} onAdded={list.reload} /> : null}
      {list.data && !writer ? <p className="muted">Changing subscriptions needs the alerts:write permission.</p> : null}
    </>
  );
}

function PushControls() {
  const [supported, setSupported] = useState<boolean | null>(null);
  const [busy, setBusy] = useState(false);
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  useEffect(() => {
    setSupported("serviceWorker" in navigator && "PushManager" in window && "Notification" in window);
  }, []);
  if (supported === false) {
    return <p className="muted">This browser cannot receive push notifications.</p>;
  }
  const run = async (fn: (csrf: string) => Promise<string>) => {
    setBusy(true);
    setError("");
    setStatus("");
    try {
      setStatus(await fn(csrfToken()));
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <div className={s.push} data-testid="push-controls">
      <p className="muted">New alerts show as system notifications on this device, even with this tab closed.</p>
      <div className="row">
        <button type="button" onClick={() => run(enablePush)} disabled={busy}>
          Enable notifications on this device
        </button>
        <button type="button" className="secondary" onClick={() => run(disablePush)} disabled={busy}>
          Turn them off on this device
        </button>
      </div>
      <p role="status" className={s.ok}>
        {status}
      </p>
      {error ? (
        <p className={s.fieldError} role="alert">
          {error}
        </p>
      ) : null}
    </div>
  );
}

const SUB_FIELDS = ["name", "recipient", "channel", "target", "cameras", "labels", "min_severity", "camera_groups"] as const;

function AddSubscription({ me, onAdded }: { me: Me; onAdded: () => void }) {
  const [name, setName] = useState("");
  const [recipient, setRecipient] = useState("");
  const [channel, setChannel] = useState<string>("email");
  const [target, setTarget] = useState("");
  const [cameras, setCameras] = useState("");
  const [labels, setLabels] = useState("");
  const [severity, setSeverity] = useState<string>("info");
  const [errors, setErrors] = useState<Record<string, string>>({});
  const [rest, setRest] = useState("");
  const [done, setDone] = useState("");
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setDone("");
    const all = commaList(cameras);
    const body = {
      name: name.trim(),
      recipient: recipient.trim(),
      channel,
      target: target.trim(),
      cameras: all.filter((c) => !c.startsWith("group:")),
      camera_groups: all.filter((c) => c.startsWith("group:")).map((c) => c.slice(6)),
      labels: commaList(labels),
      min_severity: severity,
    };
    const r = await api("POST", "/notifications/subscriptions", body);
    setBusy(false);
    if (r.ok) {
      setErrors({});
      setRest("");
      setDone(`Subscription ${body.name} added.`);
      setName("");
      setTarget("");
      onAdded();
    } else if (r.status === 422) {
      const f = fieldErrors(r.error, SUB_FIELDS);
      if (f.byField.camera_groups) f.byField.cameras = [f.byField.cameras, f.byField.camera_groups].filter(Boolean).join("; ");
      setErrors(f.byField);
      // The target's checks (by channel) are the model's own: their reasons name no field.
      if (f.rest && /target/i.test(f.rest) && !f.byField.target) {
        setErrors({ ...f.byField, target: f.rest.replace(/^Value error, /, "") });
        setRest("");
      } else setRest(f.rest);
    } else {
      setErrors({});
      setRest(r.error);
    }
  };

  return (
    <form className={`panel ${s.form}`} onSubmit={submit} data-testid="subscription-form" noValidate>
      <h4 className={s.formTitle}>Add a subscription</h4>
      <div className={s.fields}>
        <Field label="Name" error={errors.name}>
          {(p) => <input {...p} value={name} onChange={(e) => setName(e.target.value)} autoComplete="off" />}
        </Field>
        <Field label="Recipient" error={errors.recipient} hint="Who it is for: a person or system.">
          {(p) => <input {...p} value={recipient} onChange={(e) => setRecipient(e.target.value)} autoComplete="off" />}
        </Field>
        <Field label="Channel" error={errors.channel}>
          {(p) => (
            <select {...p} value={channel} onChange={(e) => setChannel(e.target.value)}>
              {CHANNELS.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Target" error={errors.target} hint={TARGET_HINT[channel]}>
          {(p) => <input {...p} value={target} onChange={(e) => setTarget(e.target.value)} autoComplete="off" className={s.wide} />}
        </Field>
        <Field
          label="Cameras"
          error={errors.cameras}
          hint={me.cameras === null ? "Comma-separated ids or group:name; empty: every camera." : "Comma-separated ids or group:name (yours)."}
        >
          {(p) => <input {...p} value={cameras} onChange={(e) => setCameras(e.target.value)} autoComplete="off" />}
        </Field>
        <Field label="Labels" error={errors.labels} hint="Comma-separated; empty: every label.">
          {(p) => <input {...p} value={labels} onChange={(e) => setLabels(e.target.value)} autoComplete="off" />}
        </Field>
        <Field label="From severity" error={errors.min_severity}>
          {(p) => (
            <select {...p} value={severity} onChange={(e) => setSeverity(e.target.value)}>
              {SEVERITIES.map((v) => (
                <option key={v} value={v}>
                  {v}
                </option>
              ))}
            </select>
          )}
        </Field>
      </div>
      <FormEnd busy={busy} label="Add subscription" busyLabel="Adding…" rest={rest} done={done} />
    </form>
  );
}
