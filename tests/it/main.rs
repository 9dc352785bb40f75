//! Integration tests: the real binaries against real servers on loopback.
//! One test binary, so DataFusion links once.

mod athena;
mod ingest;
mod pipeline;
mod support;
