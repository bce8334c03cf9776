// Baseline 1: the floor. A worker that answers a constant body, so the table shows what the
// runtime and the HTTP path cost by themselves for an answer of that size: benches/run.mjs
// gives each floor the bytes of the answer it is compared with (FLOOR_BODY), and to one floor
// its headers too (FLOOR_HEADERS, JSON pairs).
let answer;

export default {
  fetch(request, env) {
    answer ??= { body: env.FLOOR_BODY, init: { headers: new Headers(env.FLOOR_HEADERS ? JSON.parse(env.FLOOR_HEADERS) : { "content-type": "application/json" }) } };
    return new Response(answer.body, answer.init);
  },
};
