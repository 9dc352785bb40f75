//! Integration tests: the real binaries against real servers on loopback.
//! One test binary, so DataFusion links once.

mod athena;
mod athena_s3;
mod faults;
mod hostile;
mod ingest;
mod lambda;
mod pg;
mod pipeline;
mod restatements;
mod schemas;
mod slt;
mod support;
