// PLACEHOLDER so the Settings page builds before the real browser-push client lands (branch
// `webpush`): the lead merges that file over this one. Same signatures as the real one.
export async function enablePush(csrfToken: string): Promise<string> {
  void csrfToken;
  throw new Error("browser notifications are not available in this build");
}

export async function disablePush(csrfToken: string): Promise<string> {
  void csrfToken;
  throw new Error("browser notifications are not available in this build");
}
