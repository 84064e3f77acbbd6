// Where the customer's chat page keeps the messages the server has not acknowledged yet: the
// tab's sessionStorage, so a reload of the page (or the browser restoring the tab) still sends
// them, under the same client_id, while another tab or a later visit starts clean.

import { memoryOutbox, storageOutbox, type OutboxStore } from '../lib/chat/outbox';

/** The tab's outbox; in memory where the browser denies storage (some privacy settings throw). */
export function tabOutbox(): OutboxStore {
  try {
    const storage = window.sessionStorage;
    if (storage) return storageOutbox(storage);
  } catch {
    // Denied: fall through to memory.
  }
  return memoryOutbox();
}
