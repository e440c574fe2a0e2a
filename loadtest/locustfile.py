"""Locust scenario: app clients of the feed API, 95% reads.

Each simulated client authenticates as one generated user (keys are `key-<name>`,
see loadtest/README.md), then mostly reads its feeds and sometimes posts, likes,
follows or unfollows.

    pip install locust
    locust -f loadtest/locustfile.py --host http://127.0.0.1:5000 \
        --headless -u 200 -r 20 -t 2m
"""
import os
import random

from locust import HttpUser, between, task

USERS = int(os.environ.get("FEED_USERS", "10000"))
PREFIX = os.environ.get("FEED_USER_PREFIX", "user")


class AppClient(HttpUser):
    wait_time = between(0.01, 0.1)

    def on_start(self):
        self.me = f"{PREFIX}{random.randrange(USERS)}"
        self.client.headers.update({"X-App-Key": f"key-{self.me}"})
        self.objects = []

    # 95% reads.
    @task(60)
    def friends_feed(self):
        with self.client.get("/feed/friends", name="/feed/friends", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")
                return
            page = r.json().get("friends_feed", [])
            self.objects = [f"{e['object_type']}:{e['object_id']}" for e in page if e.get("object_id")][:20]
            nxt = r.json().get("next_url")
            if nxt and random.random() < 0.2:
                self.client.get(nxt, name="/feed/friends?cursor")

    @task(30)
    def my_feed(self):
        self.client.get("/feed/my", name="/feed/my")

    @task(5)
    def me(self):
        self.client.get("/me", name="/me")

    # 5% writes.
    @task(3)
    def post(self):
        kind = random.choice(["post", "photo"])
        r = self.client.post("/post", json={"type": kind, "content": "locust"}, name="/post")
        if r.status_code == 200:
            self.objects.append(f"{kind}:{r.json()['object_id']}")

    @task(1)
    def like_or_share(self):
        if self.objects:
            verb = random.choice(["like", "share"])
            self.client.post("/activity", json={"verb": verb, "object": random.choice(self.objects)}, name="/activity")

    @task(1)
    def follow_or_unfollow(self):
        other = f"{PREFIX}{random.randrange(USERS)}"
        if other == self.me:
            return
        path, field = random.choice([("/follow", "follow"), ("/unfollow", "unfollow")])
        self.client.post(path, json={field: other}, name=path)
