import Head from "next/head";
import Link from "next/link";
import { useRouter } from "next/router";
import { useEffect, useState, type ReactNode } from "react";
import { api, can, SIGNIN } from "@/lib/api";
import { live, type LiveState } from "@/lib/live";
import { useMe } from "@/lib/session";

interface NavItem {
  href: string;
  label: string;
  scope: string | null;
}

const NAV: NavItem[] = [
  { href: "/", label: "Live", scope: "cameras:read" },
  { href: "/review", label: "Review", scope: "alerts:read" },
  { href: "/search", label: "Search", scope: "events:read" },
  { href: "/zones", label: "Zones", scope: "cameras:read" },
  { href: "/system", label: "System", scope: "metrics:read" },
  { href: "/settings", label: "Settings", scope: null },
];

const LIVE_LABEL: Record<LiveState, string> = {
  connecting: "connecting…",
  open: "live",
  closed: "reconnecting…",
  denied: "no live updates",
};

export default function Layout({ title, children }: { title: string; children: ReactNode }) {
  const me = useMe();
  const router = useRouter();
  const [liveState, setLiveState] = useState<LiveState>("closed");
  // Every page keeps the tab's live socket open (pages that show live data add listeners).
  useEffect(() => {
    const client = live();
    const unsubscribe = client.subscribe(() => undefined);
    const unState = client.onState(setLiveState);
    return () => {
      unState();
      unsubscribe();
    };
  }, []);

  const signOut = async () => {
    await api("POST", "/auth/logout", undefined, { redirectOn401: false });
    location.assign(SIGNIN);
  };

  return (
    <>
      <Head>
        <title>{`${title} · Sentinel`}</title>
      </Head>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <Link href="/" className="brand">
          Sentinel
        </Link>
        <nav aria-label="Main">
          <ul>
            {NAV.filter((n) => n.scope === null || can(me, n.scope)).map((n) => (
              <li key={n.href}>
                <Link href={n.href} aria-current={router.pathname === n.href ? "page" : undefined}>
                  {n.label}
                </Link>
              </li>
            ))}
            {can(me, "annotations:write") || can(me, "annotations:review") ? (
              <li>
                <a href="/annotate">Annotate</a>
              </li>
            ) : null}
          </ul>
        </nav>
        <div className="who">
          <span className={`live-dot live-${liveState}`} role="status" aria-live="polite">
            {LIVE_LABEL[liveState]}
          </span>
          <span className="muted">{me?.role ?? ""}</span>
          <button type="button" className="link" onClick={signOut}>
            Sign out
          </button>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        <h1>{title}</h1>
        {children}
      </main>
    </>
  );
}

/** A clear message when a page's API is missing, refused or failing. */
export function Notice({ kind = "info", children }: { kind?: "info" | "error"; children: ReactNode }) {
  return (
    <p className={`notice notice-${kind}`} role={kind === "error" ? "alert" : "status"}>
      {children}
    </p>
  );
}
