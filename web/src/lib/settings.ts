// Helpers of the Settings page: the API's 422 reasons sorted by field, comma lists.

/** Splits api()'s error text ("field: msg; other.field: msg") into the reasons of the given
 * `fields` (by the first path element) and the rest (reasons of the whole body, or of fields
 * the form does not show). */
export function fieldErrors(error: string, fields: readonly string[]): { byField: Record<string, string>; rest: string } {
  const byField: Record<string, string> = {};
  const rest: string[] = [];
  for (const part of error.split("; ")) {
    const colon = part.indexOf(": ");
    const path = colon >= 0 ? part.slice(0, colon) : "";
    const msg = colon >= 0 ? part.slice(colon + 2) : part;
    const head = path.split(".")[0] ?? "";
    if (head && fields.includes(head)) {
      const text = path === head ? msg : `${path.slice(head.length + 1)}: ${msg}`;
      byField[head] = byField[head] ? `${byField[head]}; ${text}` : text;
    } else if (part.trim()) {
      rest.push(path ? part : msg);
    }
  }
  return { byField, rest: rest.join("; ") };
}

/** "a, b ,c" → ["a", "b", "c"] (empty entries dropped). */
export function commaList(text: string): string[] {
  return text
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
}
