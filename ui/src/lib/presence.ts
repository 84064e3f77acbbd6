// Presence matching for the chat. Presence state is keyed by *connection* (a random key per
// socket), never by user, so "is this user here" is answered from the payloads' `user_id`, across
// every key and every entry under a key. Keys are never compared with user ids (the seed's bug).
// Accepts realtime-js' `presenceState()` (`{key: [payload…]}`) and Phoenix' raw form
// (`{key: {metas: [payload…]}}`); malformed entries are skipped. Mirrors crates/protocol's
// presence.rs; both are tested against tests/fixtures/presence/.

/** What Wrenchline clients track on a session's presence channel. */
export type PresencePayload = {
  user_id: string;
  role?: string;
  online_at?: string;
  [extra: string]: unknown;
};

/** One tracked payload and the connection key it sits under (for the debug view). */
export type PresenceEntry = { key: string; payload: PresencePayload };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Every well-formed payload in `state`, whatever its key and shape. */
export function presenceEntries(state: unknown): PresenceEntry[] {
  if (!isObject(state)) return [];
  const entries: PresenceEntry[] = [];
  for (const [key, value] of Object.entries(state)) {
    const list = Array.isArray(value)
      ? value
      : isObject(value) && Array.isArray(value.metas)
        ? value.metas
        : [];
    for (const item of list) {
      if (isObject(item) && typeof item.user_id === 'string' && item.user_id !== '') {
        entries.push({ key, payload: item as PresencePayload });
      }
    }
  }
  return entries;
}

/** The distinct user ids present, in order of first appearance. */
export function presentUserIds(state: unknown): string[] {
  return [...new Set(presenceEntries(state).map((e) => e.payload.user_id))];
}

/** Whether `userId` is tracked on at least one connection. An absent id is never present. */
export function isPresent(state: unknown, userId: string | null | undefined): boolean {
  if (!userId) return false;
  return presenceEntries(state).some((e) => e.payload.user_id === userId);
}

export type Participants = { customer_present: boolean; mechanic_present: boolean };

/** Who of a session's two participants is present; an unassigned mechanic never is. */
export function participants(
  state: unknown,
  customerId: string | null | undefined,
  mechanicId: string | null | undefined,
): Participants {
  return {
    customer_present: isPresent(state, customerId),
    mechanic_present: isPresent(state, mechanicId),
  };
}
