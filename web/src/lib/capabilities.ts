// What this server offers (GET /api/v1/capabilities): which optional services run, as
// booleans, and the server's version. Asked once per page load and shared by every caller, so
// pages need not probe routes (and leave 404/422 in the server's logs) to find out.
import { api } from "@/lib/api";

export type Capabilities = {
  version: string;
  search: boolean;
  ask: boolean;
  kb: boolean;
  voice: boolean;
  speech: boolean;
  recordings: boolean;
  exports: boolean;
  storage: boolean;
  archive: boolean;
  notify: boolean;
  push: boolean;
  annotation: boolean;
  faces: boolean;
  privacy: boolean;
  audit_anchors: boolean;
  models: boolean;
  training: boolean;
  mining: boolean;
  live: boolean;
};

let pending: Promise<Capabilities | null> | null = null;

/** The server's capabilities; null when it cannot say (an older server, or unreachable):
 * callers then fall back to what the routes themselves answer. One GET per page load. */
export function capabilities(): Promise<Capabilities | null> {
  if (!pending) {
    pending = api<Capabilities>("GET", "/capabilities").then((r) => {
      if (r.ok) return r.data;
      if (r.status === 0) pending = null; // unreachable: ask again next time
      return null;
    });
  }
  return pending;
}
