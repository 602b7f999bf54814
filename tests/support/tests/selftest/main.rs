//! Self-tests of the test servers, checked with peer tools (curl, python3), not cta-data.

mod davserver;
mod dcache;
mod nginx;
mod peer;
mod raw;
mod tls;
