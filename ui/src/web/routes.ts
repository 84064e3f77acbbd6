// The customer web link's URLs and what each one shows (pure, so it can be tested without a
// browser). `router.svelte.ts` follows `location` and navigates.

export type Route =
  | { page: 'landing' }
  | { page: 'intake' }
  | { page: 'waiver'; session: string }
  | { page: 'thank-you'; session: string; plan: string }
  | { page: 'chat'; session: string; debug: boolean }
  | { page: 'resume' }
  | { page: 'not-found' };

export function match(pathname: string, search: string): Route {
  const path = pathname.length > 1 ? pathname.replace(/\/+$/, '') : pathname;
  const query = new URLSearchParams(search);
  switch (path) {
    case '/':
      return { page: 'landing' };
    case '/intake':
      return { page: 'intake' };
    case '/intake/waiver':
      return { page: 'waiver', session: query.get('session') ?? '' };
    case '/thank-you':
      return { page: 'thank-you', session: query.get('session') ?? '', plan: query.get('plan') ?? '' };
    case '/resume':
      // The token is in the fragment (`/resume#token=…`), which never reaches a server: the page
      // reads it from `location.hash` itself.
      return { page: 'resume' };
  }
  const chat = /^\/chat\/([^/]+)$/.exec(path);
  if (chat) {
    return { page: 'chat', session: decodeURIComponent(chat[1]), debug: query.get('debug') === 'presence' };
  }
  return { page: 'not-found' };
}
