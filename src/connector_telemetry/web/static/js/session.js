// Where the credential lives: sessionStorage (this tab only, gone when it closes), read
// by this page's own scripts and sent as a request header. Signing out forgets it.

const KEY = "ctel.session";

export function load() {
  try {
    const raw = sessionStorage.getItem(KEY);
    const session = raw ? JSON.parse(raw) : null;
    return session && session.credential ? session : null;
  } catch {
    return null;
  }
}

export function save(session) {
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function forget() {
  sessionStorage.removeItem(KEY);
}
