// Helpers of the Settings page: the API's 422 reasons sorted by field, comma lists.

/** Splits api()'s error text ("field: msg; other.field: msg") into the reasons of the given
 * `fields` (by the first path element) and the rest (reasons of the whole body, or of fields
 * the form does not show). */
export function fieldErrors(error: string, fields: readonly string[]): { byField: Record<string, string>; rest: string } {
  const byField: Record<string, string> = {};
  const rest: string[] = [];
  // A reason may itself hold "; ": a part that does not start with a location continues the one before.
  const parts: string[] = [];
  for (const part of error.split("; ")) {
    if (parts.length && !/^[\w.-]*: /.test(part)) parts[parts.length - 1] += `; ${part}`;
    else parts.push(part);
  }
  for (const part of parts) {
    const m = /^([\w.-]*): ([\s\S]*)$/.exec(part);
    const path = m ? m[1]! : "";
    const msg = (m ? m[2]! : part).replace(/^Value error, /, "");
    const head = path.split(".")[0] ?? "";
    if (head && fields.includes(head)) {
      const text = path === head ? msg : `${path.slice(head.length + 1)}: ${msg}`;
      byField[head] = byField[head] ? `${byField[head]}; ${text}` : text;
    } else if (part.trim()) {
      rest.push(path ? `${path}: ${msg}` : msg);
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
