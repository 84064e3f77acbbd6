// The shell's state arrives two ways: one snapshot read at load (`app_state`) and the events that
// keep it current. The snapshot's answer and an event travel separately, so an event sent after the
// snapshot was read can arrive first; applied after it, the snapshot would put the older value back
// and keep it until the next change. Every change after the listeners exist is an event, so a field
// some event has already told is at least as fresh from that event: the snapshot fills in the rest.

/** Records which fields events have told since the listeners were registered. */
export class Heard<K extends string> {
  private readonly told = new Set<K>();

  /** Wraps an event handler so that calling it marks `key` as told. */
  on<T>(key: K, handler: (value: T) => void): (value: T) => void {
    return (value) => {
      this.told.add(key);
      handler(value);
    };
  }

  /** The fields of `snapshot` that no event has told yet. */
  untold<S extends Record<K, unknown>>(snapshot: S): Partial<S> {
    const rest: Partial<S> = {};
    for (const key of Object.keys(snapshot) as (keyof S)[]) {
      if (!this.told.has(key as unknown as K)) rest[key] = snapshot[key];
    }
    return rest;
  }
}
