// Baseline 1: the floor. A worker that answers a constant body, so the table shows what the
// runtime and the HTTP path cost by themselves for an answer of that size: benches/run.mjs
// gives each floor the bytes of the answer it is compared with (FLOOR_BODY).
let body;

export default {
  fetch(request, env) {
    body ??= env.FLOOR_BODY;
    return new Response(body, { headers: { "content-type": "application/json" } });
  },
};
