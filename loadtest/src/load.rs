//! Load generation: closed-loop (N workers back to back, for the highest rate) and
//! open-loop (a fixed arrival rate, for latency at a given load), with latency
//! histograms.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What one load stage measured.
#[derive(Clone, Debug, Serialize)]
pub struct Measured {
    /// Successful requests.
    pub ok: u64,
    /// Failed requests (non-2xx or transport errors).
    pub errors: u64,
    /// Successful requests per second.
    pub rate: f64,
    /// Median latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile latency, milliseconds.
    pub p99_ms: f64,
}

fn summarize(histogram: &Histogram<u64>, errors: u64, elapsed: Duration) -> Measured {
    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    Measured { ok: histogram.len(), errors, rate: histogram.len() as f64 / elapsed.as_secs_f64(), p50_ms: ms(0.5), p99_ms: ms(0.99) }
}

/// A latency histogram in microseconds, up to a minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// `concurrency` workers call `request(i)` back to back for `duration`; `request`
/// returns whether it succeeded.
pub async fn closed_loop<F, Fut>(concurrency: usize, duration: Duration, request: F) -> Measured
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let timer = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(duration).await;
        timer.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    closed_loop_until(concurrency, stop, request).await
}

/// Starts `request(i)` at `rate` per second for `duration`, regardless of how long
/// earlier ones take (so latency is measured at that load, without coordinated
/// omission). `request` returns the latency it measured, or `None` on failure.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, request: F) -> Measured
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<Duration>> + Send + 'static,
{
    let interval = Duration::from_secs_f64(1.0 / rate.max(1.0));
    let start = Instant::now();
    let results = Arc::new(Mutex::new((histogram(), 0u64)));
    let mut tasks = Vec::new();
    let mut i = 0u64;
    while start.elapsed() < duration {
        tokio::time::sleep_until((start + interval.mul_f64(i as f64)).into()).await;
        let (request, results) = (request.clone(), results.clone());
        tasks.push(tokio::spawn(async move {
            let outcome = request(i).await;
            let mut r = results.lock().expect("results lock");
            match outcome {
                Some(latency) => r.0.record(latency.as_micros().max(1) as u64).expect("in bounds"),
                None => r.1 += 1,
            }
        }));
        i += 1;
    }
    for task in tasks {
        task.await.expect("open-loop request");
    }
    let elapsed = start.elapsed();
    let r = results.lock().expect("results lock");
    summarize(&r.0, r.1, elapsed)
}

/// [`open_loop`] for requests that only report success; their latency is timed here.
pub async fn open_loop_timed<F, Fut>(rate: f64, duration: Duration, request: F) -> Measured
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    open_loop(rate, duration, move |i| {
        let request = request.clone();
        async move {
            let started = Instant::now();
            request(i).await.then(|| started.elapsed())
        }
    })
    .await
}

/// [`closed_loop`] until `stop` is set (checked between requests) instead of for a fixed
/// time: load that lasts exactly as long as something else happens.
pub async fn closed_loop_until<F, Fut>(concurrency: usize, stop: Arc<std::sync::atomic::AtomicBool>, request: F) -> Measured
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = bool> + Send,
{
    let start = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency {
        let (request, stop) = (request.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut h, mut errors, mut i) = (histogram(), 0u64, worker as u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let t = Instant::now();
                if request(i).await {
                    h.record(t.elapsed().as_micros().max(1) as u64).expect("in bounds");
                } else {
                    errors += 1;
                }
                i += concurrency as u64;
            }
            (h, errors)
        }));
    }
    let (mut all, mut errors) = (histogram(), 0);
    for worker in workers {
        let (h, e) = worker.await.expect("load worker");
        all.add(h).expect("same bounds");
        errors += e;
    }
    summarize(&all, errors, start.elapsed())
}

/// What a list of timed samples looks like, like a load stage's [`Measured`] (rate is
/// samples per second of their total time).
pub fn summarize_samples(samples: &[Duration]) -> Measured {
    let mut h = histogram();
    for sample in samples {
        h.record(sample.as_micros().max(1) as u64).expect("in bounds");
    }
    let total: Duration = samples.iter().sum();
    summarize(&h, 0, total.max(Duration::from_micros(1)))
}
