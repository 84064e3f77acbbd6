// The one interface through which the UI reaches the outside world. Its implementations (desktop:
// Tauri commands and events; web: HTTP and realtime) live in this folder, and this folder is the
// only place allowed to import `@tauri-apps/*`, so the rest of the UI runs in a plain browser too.

/** A session plan as served by `GET /api/plans`. */
export type Plan = {
  id: string;
  name: string;
  minutes: number;
  price_cents: number;
};

export interface Backend {
  plans(): Promise<Plan[]>;
}
