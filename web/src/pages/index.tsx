// Live: every camera this user may see, each with its latest frame (refreshed while the tab is
// visible), its state and the reason of a failure; a tile opens the camera's view.
// Links are plain <a> (full page loads): a client-side route change makes Next inject the
// next page's CSS as an inline <style>, which the Content-Security-Policy blocks.
import Layout, { Notice } from "@/components/Layout";
import { cameraName, failureText, isLive, LiveBadge, LiveFrame, useCameras } from "@/components/LiveCommon";
import { can } from "@/lib/api";
import { useMe } from "@/lib/session";
import s from "@/styles/live.module.css";

export default function LivePage() {
  const me = useMe();
  const allowed = can(me, "cameras:read");
  const { cameras, failure, announce } = useCameras(allowed);

  if (!allowed) {
    return (
      <Layout title="Live">
        <Notice>You may not see cameras: this needs the cameras:read permission.</Notice>
      </Layout>
    );
  }

  const counts = new Map<string, number>();
  for (const c of cameras ?? []) counts.set(c.status.state, (counts.get(c.status.state) ?? 0) + 1);

  return (
    <Layout title="Live">
      <p className={s.srOnly} role="status" aria-live="polite">
        {announce}
      </p>
      {failure ? <Notice kind="error">{failureText(failure, "the cameras", "cameras:read")}</Notice> : null}
      {cameras === null && !failure ? <p role="status">Loading cameras…</p> : null}
      {cameras !== null && cameras.length === 0 ? (
        <Notice>
          {me?.cameras != null
            ? "No camera is within your camera limits. Ask an administrator to share one with you. "
            : "No camera is configured yet. "}
          {can(me, "cameras:write") || me?.cameras == null ? (
            <>
              Add one in <a href="/settings">Settings</a> (it needs the cameras:write permission), or in the
              cameras section of Sentinel&apos;s config file.
            </>
          ) : null}
        </Notice>
      ) : null}
      {cameras !== null && cameras.length > 0 ? (
        <>
          <p className={`muted ${s.summary}`}>
            {cameras.length} camera{cameras.length === 1 ? "" : "s"}
            {[...counts.entries()].map(([state, n]) => (
              <span key={state}>
                · {n} {state}
              </span>
            ))}
          </p>
          <ul className={s.tiles} aria-label="Cameras">
            {cameras.map((c) => {
              const name = cameraName(c);
              const href = `/camera?id=${encodeURIComponent(c.id)}`;
              return (
                <li key={c.id} className={`panel ${s.tile}`}>
                  <div className={s.tileHead}>
                    <h2>
                      <a href={href}>{name}</a>
                    </h2>
                    {c.name ? <span className="muted">{c.id}</span> : null}
                  </div>
                  <a href={href} className={s.tileLink} tabIndex={-1} aria-hidden="true">
                    <LiveFrame cameraId={c.id} alt={`Latest frame of ${name}`} refresh={isLive(c.status.state)} />
                  </a>
                  <LiveBadge camera={c} />
                </li>
              );
            })}
          </ul>
        </>
      ) : null}
    </Layout>
  );
}
