/**
 * The token: taken from `?token=` (then kept for this tab and out of the address bar), checked
 * with the HTTP API before the socket is opened, and asked for when there is none or it was refused.
 */
const TOKEN_KEY = 'vmstream.token';

export function takeToken(): string | null {
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    params.delete('token');
    history.replaceState(null, '', `${location.pathname}${params.size > 0 ? `?${params}` : ''}`);
    return fromUrl;
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

export function forgetToken(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** Shows the token form, with why it is shown; a submitted token reloads the page with it. */
export function askForToken(message?: string): void {
  const form = document.getElementById('login') as HTMLFormElement;
  const input = document.getElementById('token') as HTMLInputElement;
  form.hidden = false;
  document.getElementById('login-error')!.textContent = message ?? '';
  input.focus();
  form.onsubmit = (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    location.reload();
  };
}

/**
 * Asks the HTTP API with the token before opening the socket: a browser's WebSocket hides the
 * upgrade's 401, so a refused token would otherwise look like a server that is down. Null when
 * the token is good, else what to tell the user.
 */
export async function checkToken(token: string): Promise<string | null> {
  let response: Response;
  try {
    response = await fetch('/api/v1/sessions', { headers: { authorization: `Bearer ${token}` } });
  } catch (error) {
    return `The server cannot be reached (${(error as Error).message}).`;
  }
  if (response.status === 401) return 'That token was refused by the server: check it and try again.';
  if (response.status === 403) return 'This page\'s origin is not allowed by the server (VMSTREAM_ORIGINS).';
  return null;
}
