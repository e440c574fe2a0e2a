//! The data generator behind `feedgen`: users, a power-law follower graph and
//! historical activities, published through the feed topic (or written directly).

use crate::seed::{bar, Seeder};
use chrono::{DateTime, Duration, Utc};
use feed_core::config::CommonConfig;
use feed_core::event::{Event, EventType, ObjectKind, ObjectRef, UserRef};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Zipf};
use std::collections::HashSet;

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenConfig {
    /// Number of users (named `<prefix>0..`, key `key-<name>`).
    pub users: usize,
    /// Number of activities.
    pub activities: usize,
    /// Weeks of history, ending at `end`.
    pub weeks: i64,
    /// End of the history.
    pub end: DateTime<Utc>,
    /// Random seed.
    pub seed: u64,
    /// User name prefix.
    pub prefix: String,
    /// Write straight into PostgreSQL and rebuild the Redis feeds from it, instead of
    /// publishing through the broker (see [`crate::seed`]).
    pub direct: bool,
}

/// What was published.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// Users ensured.
    pub users: usize,
    /// Follow events.
    pub follows: usize,
    /// Activities.
    pub activities: usize,
}

/// Who follows whom: popularity follows a Zipf law over a shuffled ranking, so a few
/// accounts get thousands of followers and most get a handful.
fn follow_graph(rng: &mut StdRng, n: usize) -> Vec<(usize, usize)> {
    let mut ranking: Vec<usize> = (0..n).collect();
    ranking.shuffle(rng);
    let popularity = Zipf::new(n as f64, 1.1).expect("valid Zipf");
    let out_degree = Zipf::new(200.0, 1.3).expect("valid Zipf");
    let mut edges = Vec::new();
    for follower in 0..n {
        let wanted = (out_degree.sample(rng) as usize).min(n - 1) + 1;
        let mut chosen = HashSet::new();
        for _ in 0..wanted * 3 {
            if chosen.len() == wanted {
                break;
            }
            let followee = ranking[popularity.sample(rng) as usize - 1];
            if followee != follower && chosen.insert(followee) {
                edges.push((follower, followee));
            }
        }
    }
    edges
}

/// Generates and publishes the dataset.
pub async fn generate(common: &CommonConfig, args: &GenConfig) -> anyhow::Result<Generated> {
    anyhow::ensure!(args.users >= 2, "need at least two users");
    let seeder = if args.direct { Seeder::direct(common).await? } else { Seeder::connect(common).await? };
    let mut rng = StdRng::seed_from_u64(args.seed);
    let start = args.end - Duration::weeks(args.weeks);
    let event_id = |rng: &mut StdRng| uuid::Builder::from_random_bytes(rng.random()).into_uuid();

    let names: Vec<String> = (0..args.users).map(|i| format!("{}{i}", args.prefix)).collect();
    let progress = bar(args.users as u64, "users");
    let users: Vec<UserRef> = seeder.ensure_users(&names, &progress).await?;
    progress.finish();

    let edges = follow_graph(&mut rng, args.users);
    let progress = bar(edges.len() as u64, "follows");
    let follows: Vec<Event> = edges
        .iter()
        .map(|&(a, b)| {
            let mut e = Event::new(EventType::Follow, users[a].clone(), None, Some(users[b].clone()), serde_json::Value::Null);
            e.event_id = event_id(&mut rng);
            e.time = start;
            e
        })
        .collect();
    seeder.publish(follows, &progress).await?;
    progress.finish();

    // Decide every activity's kind first, to reserve object ids in one go per kind.
    let actors = Zipf::new(args.users as f64, 0.8).expect("valid Zipf");
    let kinds: Vec<EventType> = (0..args.activities)
        .map(|i| match rng.random_range(0..10) {
            _ if i == 0 => EventType::Post,
            0..=6 => EventType::Post,
            7 | 8 => EventType::Like,
            _ => EventType::Share,
        })
        .collect();
    let posts: Vec<ObjectKind> = kinds
        .iter()
        .filter(|k| **k == EventType::Post)
        .map(|_| if rng.random_bool(0.5) { ObjectKind::Post } else { ObjectKind::Photo })
        .collect();
    let count = |kind| posts.iter().filter(|k| **k == kind).count();
    let mut post_ids = seeder.object_ids("post_ids", count(ObjectKind::Post)).await?.into_iter();
    let mut photo_ids = seeder.object_ids("photo_ids", count(ObjectKind::Photo)).await?.into_iter();
    let mut post_kinds = posts.into_iter();

    let span_micros = (args.end - start).num_microseconds().unwrap_or(1).max(1);
    let mut times: Vec<i64> = (0..args.activities).map(|_| rng.random_range(0..span_micros)).collect();
    times.sort_unstable();
    let mut objects: Vec<(ObjectRef, usize)> = Vec::new();
    let mut activities = Vec::with_capacity(args.activities);
    for (kind, offset) in kinds.into_iter().zip(times) {
        let actor = actors.sample(&mut rng) as usize - 1;
        let time = start + Duration::microseconds(offset);
        let (object, target, payload) = if kind == EventType::Post {
            let object_kind = post_kinds.next().expect("one kind per post");
            let id = match object_kind {
                ObjectKind::Post => post_ids.next(),
                ObjectKind::Photo => photo_ids.next(),
            }
            .expect("reserved ids");
            let object = ObjectRef { kind: object_kind, id };
            objects.push((object, actor));
            (object, None, serde_json::json!({ "content": format!("generated {object}") }))
        } else {
            let (object, owner) = objects[rng.random_range(0..objects.len())];
            (object, Some(users[owner].clone()), serde_json::Value::Null)
        };
        let mut event = Event::new(kind, users[actor].clone(), Some(object), target, payload);
        event.event_id = event_id(&mut rng);
        event.time = time;
        activities.push(event);
    }
    let progress = bar(activities.len() as u64, "activities");
    seeder.publish(activities, &progress).await?;
    progress.finish();

    if args.direct {
        seeder.rebuild_feeds(common, feed_core::config::FeedSettings::from_env()?, None).await?;
    }
    Ok(Generated { users: args.users, follows: edges.len(), activities: args.activities })
}
