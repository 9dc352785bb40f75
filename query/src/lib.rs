//! The query service: Athena API, REST and CLI over the read model (being built).
