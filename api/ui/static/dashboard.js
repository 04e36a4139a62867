// Shared by every page: the CSRF value the server wrote into the page, and a JSON call to the /v1 API that
// the session cookie authenticates (same origin; the cookie itself is HttpOnly).
window.stagerun = {
  csrf: () => document.querySelector('meta[name="csrf-token"]').content,
  async post(url) {
    const response = await fetch(url, { method: "POST", headers: { "X-CSRF-Token": this.csrf() }, credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error((body.error && body.error.message) || body.detail || response.statusText);
    return body;
  },
};
