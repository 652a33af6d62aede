import { useEffect, useState } from "react";

/** Whether the tab is visible (pages stop polling while it is hidden). */
export function useVisible(): boolean {
  const [visible, setVisible] = useState(true);
  useEffect(() => {
    const update = () => setVisible(document.visibilityState === "visible");
    update();
    document.addEventListener("visibilitychange", update);
    return () => document.removeEventListener("visibilitychange", update);
  }, []);
  return visible;
}

/** Calls `fn` every `ms` while `active` (and once at once). */
export function useInterval(fn: () => void, ms: number, active = true): void {
  useEffect(() => {
    if (!active) return;
    fn();
    const id = setInterval(fn, ms);
    return () => clearInterval(id);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [ms, active]);
}
