//! Tools that drive a running stack: a data generator (`feedgen`), a benchmark
//! (`feedbench`) and a crash-recovery benchmark (`feedrecovery`). They publish straight
//! onto the feed topic with the product's own envelope, so the data goes through the
//! real writer and fan-out.

pub mod bench;
pub mod gen;
pub mod load;
pub mod recovery;
pub mod seed;
