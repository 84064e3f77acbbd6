// Words for the app's own updates (src-tauri/updates.rs reports the state; these say it).

import type { UpdateView } from '../lib/backend/tauri';

function megabytes(bytes: number): string {
  return (bytes / 1_000_000).toFixed(1);
}

/** "12.3 of 66.1 MB", or "12.3 MB" while the size is unknown. */
export function progress(received: number, total: number | null): string {
  return total ? `${megabytes(received)} of ${megabytes(total)} MB` : `${megabytes(received)} MB`;
}

/** One sentence for the state of updates. */
export function describeUpdate(u: UpdateView, current: string): string {
  switch (u.state) {
    case 'off':
      return u.reason;
    case 'idle':
      return `Wrenchline ${current}. Not checked for updates yet.`;
    case 'checking':
      return 'Checking for updates…';
    case 'up_to_date':
      return `Wrenchline ${current} is up to date.`;
    case 'available':
      return `Wrenchline ${u.version} is available (you have ${current}).`;
    case 'downloading':
      return `Downloading Wrenchline ${u.version}: ${progress(u.received, u.total)}…`;
    case 'installed':
      return `Wrenchline ${u.version} is installed. Restart to use it.`;
    case 'failed':
      return u.message;
  }
}

/** Whether the state asks something of the mechanic (shown above every view). */
export function needsAttention(u: UpdateView): boolean {
  return u.state === 'available' || u.state === 'installed' || (u.state === 'failed' && u.version !== null);
}
