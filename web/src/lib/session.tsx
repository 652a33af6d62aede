// Who is signed in (GET /auth/me), shared by every page through a React context.
import { createContext, useContext } from "react";
import type { Me } from "./api";

export const SessionContext = createContext<Me | null>(null);

export function useMe(): Me | null {
  return useContext(SessionContext);
}
