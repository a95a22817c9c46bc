//! Work spread over a few threads, each taking the next item when done
//! with one: the fd tables of a host's processes, and its namespaces, are
//! many items of very different sizes.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` of every item, on `threads` threads that each take the next item
/// when done with one; results in no particular order.
pub fn on_threads<I: Sync, T: Send>(
    threads: usize,
    items: &[I],
    f: impl Fn(&I) -> T + Sync,
) -> Vec<T> {
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut mine = Vec::new();
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    mine.push(f(item));
                }
                results
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .append(&mut mine);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}
