//! What the agent's routes serve: the latest collection, rendered once.
//!
//! The collection loop renders each result into the bytes of every route
//! and swaps them in; a scrape takes a reference-counted copy of those bytes
//! under a lock held for a pointer copy. So a scrape never collects, never
//! renders, never waits for a collection, and serving many scrapes at once
//! costs no memory per scrape beyond the connection's own buffers.

use bytes::Bytes;
use std::sync::Mutex;

/// Whether the agent has something current to serve (`/healthz`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// No collection has finished yet.
    Starting,
    /// The last collection succeeded.
    Ok,
    /// The last collection failed, for this reason (escaped, one line).
    Failing(String),
}

/// The bodies of the routes, as of the last collection.
#[derive(Debug, Clone)]
pub struct Served {
    /// `/metrics`: the reports' series (none when the last collection
    /// failed) and the agent's own.
    pub metrics: Bytes,
    /// `/report`: the JSON report of the last collection that succeeded.
    pub report: Option<Bytes>,
    pub health: Health,
}

/// The served bodies, shared by the collection loop (which replaces them)
/// and the HTTP side (which reads them).
#[derive(Debug)]
pub struct Latest(Mutex<Served>);

impl Latest {
    /// Before the first collection: the agent's own series only.
    pub fn new(metrics: Bytes) -> Latest {
        Latest(Mutex::new(Served {
            metrics,
            report: None,
            health: Health::Starting,
        }))
    }

    /// The bodies to serve now (their bytes are shared, not copied).
    pub fn get(&self) -> Served {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts a collection's bodies in place of the previous ones.
    pub fn set(&self, served: Served) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = served;
    }
}
