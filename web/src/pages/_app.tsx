import type { AppProps } from "next/app";
import Head from "next/head";
import type { NextPage } from "next";
import { useEffect, useState } from "react";
import { api, csrfToken, type Me } from "@/lib/api";
import { enablePush } from "@/lib/push";
import { SessionContext } from "@/lib/session";
// Every stylesheet is loaded here, once, as a <link>: a page's own CSS would be injected on a
// client-side route change as an inline <style>, which the Content-Security-Policy blocks.
// (tests/integration/test_dashboard_app.py checks that no page has CSS of its own.)
import "@/styles/globals.css";
import "@/styles/live.module.css";
import "@/styles/review.module.css";
import "@/styles/search.module.css";
import "@/styles/settings.module.css";
import "@/styles/system.module.css";

type Page = NextPage & { public?: boolean };

export default function App({ Component, pageProps }: AppProps & { Component: Page }) {
  const [me, setMe] = useState<Me | null>(null);
  const [failed, setFailed] = useState<string | null>(null);
  const isPublic = Component.public === true;

  useEffect(() => {
    if (isPublic || me) return;
    let stop = false;
    api<Me>("GET", "/auth/me").then((r) => {
      if (stop) return;
      if (r.ok) setMe(r.data);
      else if (r.status !== 401) setFailed(r.error);
    });
    return () => {
      stop = true;
    };
  }, [isPublic, me]);

  useEffect(() => {
    if ("serviceWorker" in navigator && location.protocol !== "file:") {
      navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => undefined);
    }
  }, []);

  // A browser that already allowed notifications re-sends its push subscription once signed in
  // (idempotent; it may have changed while the service worker could not tell the server).
  useEffect(() => {
    if (!me || !me.scopes.includes("alerts:read")) return;
    if (typeof Notification === "undefined" || Notification.permission !== "granted") return;
    enablePush(csrfToken()).catch(() => undefined);
  }, [me]);

  const title = (
    <Head>
      <title>Sentinel</title>
    </Head>
  );
  if (isPublic) return <Component {...pageProps} />;
  if (failed) {
    return (
      <main id="main" className="center">
        {title}
        <p className="notice notice-error" role="alert">
          Sentinel cannot be reached: {failed}
        </p>
      </main>
    );
  }
  if (!me) {
    return (
      <main id="main" className="center">
        {title}
        <p role="status">Loading…</p>
      </main>
    );
  }
  return (
    <SessionContext.Provider value={me}>
      <Component {...pageProps} />
    </SessionContext.Provider>
  );
}
