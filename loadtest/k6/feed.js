// k6 scenario mirroring loadtest/locustfile.py: app clients, 95% reads.
//
//   k6 run -e BASE_URL=http://127.0.0.1:5000 -e USERS=10000 loadtest/k6/feed.js
import http from "k6/http";
import { check } from "k6";

const BASE = __ENV.BASE_URL || "http://127.0.0.1:5000";
const USERS = parseInt(__ENV.USERS || "10000", 10);
const PREFIX = __ENV.USER_PREFIX || "user";

export const options = {
  scenarios: {
    clients: { executor: "constant-vus", vus: parseInt(__ENV.VUS || "100", 10), duration: __ENV.DURATION || "2m" },
  },
  thresholds: {
    "http_req_failed": ["rate<0.01"],
    "http_req_duration{name:/feed/friends}": ["p(99)<50"],
  },
};

function pick(n) {
  return Math.floor(Math.random() * n);
}

export function setup() {
  const r = http.get(`${BASE}/health`);
  check(r, { "stack healthy": (res) => res.status === 200 });
}

export default function () {
  const me = `${PREFIX}${pick(USERS)}`;
  const headers = { "X-App-Key": `key-${me}`, "Content-Type": "application/json" };
  const roll = Math.random() * 100;
  if (roll < 60) {
    const r = http.get(`${BASE}/feed/friends`, { headers, tags: { name: "/feed/friends" } });
    check(r, { "friends 200": (res) => res.status === 200 });
  } else if (roll < 90) {
    http.get(`${BASE}/feed/my`, { headers, tags: { name: "/feed/my" } });
  } else if (roll < 95) {
    http.get(`${BASE}/me`, { headers, tags: { name: "/me" } });
  } else if (roll < 98) {
    const kind = Math.random() < 0.5 ? "post" : "photo";
    const r = http.post(`${BASE}/post`, JSON.stringify({ type: kind, content: "k6" }), { headers, tags: { name: "/post" } });
    check(r, { "post 200": (res) => res.status === 200 });
    if (r.status === 200 && Math.random() < 0.5) {
      const verb = Math.random() < 0.5 ? "like" : "share";
      http.post(`${BASE}/activity`, JSON.stringify({ verb, object: `${kind}:${r.json("object_id")}` }), { headers, tags: { name: "/activity" } });
    }
  } else {
    const other = `${PREFIX}${pick(USERS)}`;
    if (other !== me) {
      const [path, field] = Math.random() < 0.5 ? ["/follow", "follow"] : ["/unfollow", "unfollow"];
      http.post(`${BASE}${path}`, JSON.stringify({ [field]: other }), { headers, tags: { name: path } });
    }
  }
}
