//! Integration tests: the real binaries against real servers on loopback.
//! One test binary, so DataFusion links once.

mod ingest;
mod support;
