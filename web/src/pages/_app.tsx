import type { AppProps } from "next/app";
import type { NextPage } from "next";
import { useEffect, useState } from "react";
import { api, type Me } from "@/lib/api";
import { SessionContext } from "@/lib/session";
import "@/styles/globals.css";

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

  if (isPublic) return <Component {...pageProps} />;
  if (failed) {
    return (
      <main id="main" className="center">
        <p className="notice notice-error" role="alert">
          Sentinel cannot be reached: {failed}
        </p>
      </main>
    );
  }
  if (!me) {
    return (
      <main id="main" className="center">
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
