// Zones (/zones?id=…): a camera's zones over its latest frame. With cameras:write they can be
// drawn, reshaped, renamed, deleted and saved (PUT /api/v1/cameras/{id}/scene, which keeps
// the camera's lines and masks as they are and restarts the camera); without it, read-only.
import { useRouter } from "next/router";
import { useCallback, useEffect, useMemo, useState } from "react";
// Links are plain <a> (full page loads): a client-side route change makes Next inject the
// next page's CSS as an inline <style>, which the Content-Security-Policy blocks.
import Layout, { Notice } from "@/components/Layout";
import {
  cameraName,
  failureText,
  LiveFrame,
  SceneShapes,
  useCameras,
  type Camera,
  type Failure,
  type Point,
  type Zone,
} from "@/components/LiveCommon";
import { NAME_PATTERN, newZoneName, ZoneCanvas } from "@/components/LiveZoneEditor";
import { api, can, query } from "@/lib/api";
import { useMe } from "@/lib/session";
import s from "@/styles/live.module.css";

function zoneProblem(z: Zone, zones: Zone[]): string | null {
  if (!NAME_PATTERN.test(z.name)) {
    return "Names are 1–64 characters: lower-case letters, digits, - and _, starting with a letter or digit.";
  }
  if (zones.filter((o) => o.name === z.name).length > 1) return "Another zone has this name.";
  if (z.polygon.length < 3) return "A zone needs at least 3 points.";
  return null;
}

export default function ZonesPage() {
  const router = useRouter();
  const me = useMe();
  const allowed = can(me, "cameras:read");
  const editable = can(me, "cameras:write");
  const { cameras, failure: listFailure } = useCameras(allowed);
  const queryId = router.isReady && typeof router.query.id === "string" ? router.query.id : null;

  const [camera, setCamera] = useState<Camera | null>(null);
  const [failure, setFailure] = useState<Failure | null>(null);
  const [zones, setZones] = useState<Zone[]>([]);
  const [selected, setSelected] = useState<number | null>(null);
  const [drawing, setDrawing] = useState<Point[] | null>(null);
  const [saving, setSaving] = useState(false);
  const [saveError, setSaveError] = useState<string | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const [labelsText, setLabelsText] = useState("");

  const id = queryId ?? cameras?.[0]?.id ?? null;
  const dirty = useMemo(() => camera !== null && JSON.stringify(zones) !== JSON.stringify(camera.zones), [camera, zones]);

  const load = useCallback(async (cid: string) => {
    const r = await api<Camera>("GET", `/cameras/${encodeURIComponent(cid)}`);
    if (r.ok) {
      setCamera(r.data);
      setZones(r.data.zones);
      setFailure(null);
    } else {
      setCamera(null);
      setFailure({ status: r.status, error: r.error });
    }
  }, []);

  useEffect(() => {
    setCamera(null);
    setSelected(null);
    setDrawing(null);
    setSaveError(null);
    setSaved(null);
    if (allowed && id) void load(id);
  }, [allowed, id, load]);

  useEffect(() => {
    if (!dirty) return;
    const warn = (e: BeforeUnloadEvent) => {
      e.preventDefault();
    };
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [dirty]);

  const sel = selected !== null ? zones[selected] : undefined;
  useEffect(() => {
    setLabelsText(sel?.labels ? sel.labels.join(", ") : "");
    // Only when another zone is selected: typing must not be rewritten.
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [selected, camera]);

  const pick = (cid: string) => {
    if (dirty && !confirm("Discard the unsaved zone changes?")) return;
    void router.replace(`/zones${query({ id: cid })}`, undefined, { shallow: true });
  };

  const change = useCallback((i: number, polygon: Point[]) => {
    setZones((zs) => zs.map((z, j) => (j === i ? { ...z, polygon } : z)));
    setSaved(null);
  }, []);

  const create = useCallback((polygon: Point[]) => {
    setZones((zs) => {
      const z: Zone = { name: newZoneName(zs), polygon, inertia: 3, labels: null };
      setSelected(zs.length);
      return [...zs, z];
    });
    setDrawing(null);
    setSaved(null);
    setTimeout(() => document.getElementById("zone-name")?.focus(), 0);
  }, []);

  const update = (patch: Partial<Zone>) => {
    if (selected === null) return;
    setZones((zs) => zs.map((z, j) => (j === selected ? { ...z, ...patch } : z)));
    setSaved(null);
  };

  const remove = () => {
    if (selected === null || !sel) return;
    if (!confirm(`Delete zone ${sel.name}? Rules that use it will stop the save.`)) return;
    setZones((zs) => zs.filter((_, j) => j !== selected));
    setSelected(null);
    setSaved(null);
  };

  const problems = zones.map((z) => zoneProblem(z, zones));
  const firstProblem = problems.findIndex((p) => p !== null);

  const save = async () => {
    if (!camera) return;
    if (firstProblem >= 0) {
      setSelected(firstProblem);
      setSaveError(`Zone ${firstProblem + 1}: ${problems[firstProblem]}`);
      return;
    }
    setSaving(true);
    setSaveError(null);
    const r = await api<Camera>("PUT", `/cameras/${encodeURIComponent(camera.id)}/scene`, {
      zones,
      lines: camera.lines,
      motion_masks: camera.motion_masks,
      object_masks: camera.object_masks,
    });
    setSaving(false);
    if (r.ok) {
      setCamera(r.data);
      setZones(r.data.zones);
      setSaved(`Saved ${r.data.zones.length} zone${r.data.zones.length === 1 ? "" : "s"}; the camera restarts with them.`);
    } else if (r.status === 403) {
      setSaveError("You may not edit this camera's zones (this needs the cameras:write permission).");
    } else {
      setSaveError(`Not saved: ${r.error}`);
    }
  };

  const discard = () => {
    if (!camera) return;
    setZones(camera.zones);
    setSelected(null);
    setDrawing(null);
    setSaveError(null);
  };

  const startDrawing = () => {
    setSelected(null);
    setDrawing([]);
    setSaved(null);
    setTimeout(() => document.querySelector<SVGSVGElement>("svg[role=application]")?.focus(), 0);
  };

  if (!allowed) {
    return (
      <Layout title="Zones">
        <Notice>You may not see cameras: this needs the cameras:read permission.</Notice>
      </Layout>
    );
  }

  return (
    <Layout title="Zones">
      {listFailure ? <Notice kind="error">{failureText(listFailure, "the cameras", "cameras:read")}</Notice> : null}
      {cameras !== null && cameras.length === 0 ? (
        <Notice>
          No camera to draw zones on. <a href="/settings">Add a camera in Settings</a> first.
        </Notice>
      ) : null}
      {cameras !== null && cameras.length > 0 ? (
        <div className="filters">
          <label>
            Camera
            <select value={id ?? ""} onChange={(e) => pick(e.target.value)}>
              {queryId && !cameras.some((c) => c.id === queryId) ? <option value={queryId}>{queryId}</option> : null}
              {cameras.map((c) => (
                <option key={c.id} value={c.id}>
                  {cameraName(c)}
                  {c.name ? ` (${c.id})` : ""}
                </option>
              ))}
            </select>
          </label>
          {id ? <a href={`/camera${query({ id })}`}>Open the camera view</a> : null}
        </div>
      ) : null}
      {failure ? <Notice kind="error">{failureText(failure, `camera ${id ?? ""}`, "cameras:read")}</Notice> : null}
      {!camera && !failure && (cameras === null || cameras.length > 0) ? <p role="status">Loading…</p> : null}
      {camera && !editable ? (
        <>
          <Notice>Zones are shown read-only: editing them needs the cameras:write permission.</Notice>
          <div className={s.editor}>
            <LiveFrame
              cameraId={camera.id}
              large
              periodMs={1000}
              alt={`Latest frame of ${cameraName(camera)}, with its zones`}
              overlay={(size) => <SceneShapes zones={camera.zones} lines={camera.lines} size={size} />}
            />
            <section className="panel" aria-labelledby="zones-h">
              <h2 id="zones-h">Zones of {cameraName(camera)}</h2>
              <ZoneTable zones={camera.zones} />
            </section>
          </div>
        </>
      ) : null}
      {camera && editable ? (
        <div className={s.editor}>
          <div>
            <ZoneCanvas
              cameraId={camera.id}
              alt={`Latest frame of ${cameraName(camera)}`}
              zones={zones}
              lines={camera.lines}
              selected={selected}
              onSelect={(i) => {
                setSelected(i);
              }}
              onChange={change}
              onCreate={create}
              drawing={drawing}
              setDrawing={setDrawing}
            />
            <ul className={`muted ${s.help}`} id="zone-help">
              <li>
                <strong>New zone</strong>, then click points on the frame (or move the cross with the arrow keys and press{" "}
                <kbd>Space</kbd>). <kbd>Enter</kbd> closes the zone, <kbd>Backspace</kbd> removes the last point,{" "}
                <kbd>Escape</kbd> cancels.
              </li>
              <li>
                Click a zone to select it; drag its vertices (or focus one with <kbd>Tab</kbd> and use the arrow keys,{" "}
                <kbd>Delete</kbd> removes it); drag a small middle handle to add a vertex.
              </li>
              <li>Dashed lines are the camera&apos;s lines: they are kept as they are.</li>
            </ul>
          </div>
          <section className="panel" aria-labelledby="zones-h">
            <h2 id="zones-h">Zones of {cameraName(camera)}</h2>
            {drawing !== null ? (
              <div className={s.actions}>
                <button type="button" onClick={() => drawing.length >= 3 && create(drawing)} disabled={drawing.length < 3}>
                  Close zone ({drawing.length} points)
                </button>
                <button type="button" className="secondary" onClick={() => setDrawing(drawing.slice(0, -1))} disabled={!drawing.length}>
                  Remove last point
                </button>
                <button type="button" className="secondary" onClick={() => setDrawing(null)}>
                  Cancel
                </button>
              </div>
            ) : (
              <div className={s.actions}>
                <button type="button" onClick={startDrawing}>
                  New zone
                </button>
              </div>
            )}
            {zones.length === 0 ? (
              <p className="muted">No zones yet.</p>
            ) : (
              <ul className={s.zoneList} aria-label="Zones">
                {zones.map((z, i) => (
                  <li key={i} className={s.zoneItem}>
                    <button
                      type="button"
                      className={s.zoneButton}
                      aria-pressed={i === selected}
                      onClick={() => {
                        setDrawing(null);
                        setSelected(i === selected ? null : i);
                      }}
                    >
                      {z.name} <span className="muted">· {z.polygon.length} points</span>
                      {problems[i] ? <span className={s.error}> · needs fixing</span> : null}
                    </button>
                  </li>
                ))}
              </ul>
            )}
            {sel && selected !== null ? (
              <fieldset className={s.fieldset}>
                <legend>Zone {sel.name}</legend>
                <label className={s.field}>
                  Name
                  <input
                    id="zone-name"
                    value={sel.name}
                    maxLength={64}
                    aria-invalid={problems[selected] !== null}
                    aria-describedby="zone-name-error"
                    onChange={(e) => update({ name: e.target.value.trim().toLowerCase() })}
                  />
                </label>
                <p id="zone-name-error" className={s.error} role={problems[selected] ? "alert" : undefined}>
                  {problems[selected] ?? ""}
                </p>
                <label className={s.field}>
                  Frames to enter or leave (inertia)
                  <input
                    type="number"
                    min={1}
                    max={100}
                    value={sel.inertia}
                    onChange={(e) => update({ inertia: Math.min(100, Math.max(1, Number(e.target.value) || 1)) })}
                  />
                </label>
                <label className={s.field}>
                  Labels (comma-separated; empty: every label)
                  <input
                    value={labelsText}
                    onChange={(e) => {
                      setLabelsText(e.target.value);
                      const labels = e.target.value
                        .split(",")
                        .map((t) => t.trim())
                        .filter(Boolean);
                      update({ labels: labels.length ? labels : null });
                    }}
                  />
                </label>
                <button type="button" className="danger" onClick={remove}>
                  Delete zone
                </button>
              </fieldset>
            ) : null}
            <div className={s.actions}>
              <button type="button" onClick={save} disabled={saving || !dirty || drawing !== null}>
                {saving ? "Saving…" : "Save zones"}
              </button>
              <button type="button" className="secondary" onClick={discard} disabled={saving || !dirty}>
                Discard changes
              </button>
            </div>
            <div role="status" aria-live="polite">
              {saved ? <p className="muted">{saved}</p> : null}
              {dirty && !saved ? <p className="muted">Unsaved changes. Saving restarts the camera.</p> : null}
            </div>
            {saveError ? <Notice kind="error">{saveError}</Notice> : null}
          </section>
        </div>
      ) : null}
    </Layout>
  );
}

function ZoneTable({ zones }: { zones: Zone[] }) {
  if (zones.length === 0) return <p className="muted">This camera has no zones.</p>;
  return (
    <div className="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Points</th>
            <th scope="col">Labels</th>
            <th scope="col">Inertia</th>
          </tr>
        </thead>
        <tbody>
          {zones.map((z) => (
            <tr key={z.name}>
              <td>{z.name}</td>
              <td>{z.polygon.length}</td>
              <td>{z.labels ? z.labels.join(", ") : "every label"}</td>
              <td>{z.inertia}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
