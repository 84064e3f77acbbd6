// Client-side routing on `location.pathname` for the customer's web link. The server answers every
// non-file path with the app shell, so any of these URLs can be opened, reloaded and shared.

import { WebBackend } from '../lib/backend/web';
import type { Backend } from '../lib/backend';

export { match, type Route } from './routes';

/** The one backend of the web shell. */
export const backend: Backend = new WebBackend();

export const location_ = $state({ pathname: location.pathname, search: location.search, navigations: 0 });

/** Goes to a path of this app without reloading the page. */
export function navigate(to: string, { replace = false } = {}): void {
  const url = new URL(to, location.href);
  if (url.origin !== location.origin) {
    location.assign(url.href);
    return;
  }
  if (replace) history.replaceState(null, '', url.href);
  else history.pushState(null, '', url.href);
  location_.pathname = url.pathname;
  location_.search = url.search;
  location_.navigations += 1;
  window.scrollTo(0, 0);
}

/** Follows same-origin links inside the app without a reload (modified clicks behave as usual). */
export function interceptLinks(root: HTMLElement | Document = document): () => void {
  const onClick = (event: MouseEvent) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) {
      return;
    }
    const a = (event.target as Element | null)?.closest?.('a');
    if (!a || a.target || a.hasAttribute('download') || a.origin !== location.origin) return;
    event.preventDefault();
    navigate(a.pathname + a.search + a.hash);
  };
  const onPop = () => {
    location_.pathname = location.pathname;
    location_.search = location.search;
    location_.navigations += 1;
  };
  root.addEventListener('click', onClick as EventListener);
  window.addEventListener('popstate', onPop);
  return () => {
    root.removeEventListener('click', onClick as EventListener);
    window.removeEventListener('popstate', onPop);
  };
}
