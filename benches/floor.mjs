// Baseline 1: the floor. A worker that answers a constant JSON, so the table shows what
// the runtime and the HTTP path cost by themselves.
const BODY = '{"status":"ok","server":"localhost","version":"0"}';

export default {
  fetch() {
    return new Response(BODY, { headers: { "content-type": "application/json" } });
  },
};
