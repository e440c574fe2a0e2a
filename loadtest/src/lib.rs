//! Tools that drive a running stack: a data generator (`feedgen`) and a benchmark
//! (`feedbench`). Both publish straight onto the feed topic with the product's own
//! envelope, so the data goes through the real writer and fan-out.

pub mod bench;
pub mod gen;
pub mod load;
pub mod seed;
