//! `connleak serve`: a long-running agent that Prometheus scrapes.
//!
//! Two sides share one [`latest::Latest`]: the collection loop
//! ([`sampler`]) refreshes the pipeline every interval on a thread of its
//! own and leaves the rendered bodies there; the HTTP side ([`http`]) serves
//! them to whoever asks, on a current-thread runtime. A scrape never
//! triggers a collection, so scraping cannot load the host, and a slow
//! collection never delays a scrape. SIGTERM and SIGINT end the process at
//! once: it holds nothing that needs flushing (it only reads the system).

pub mod http;
pub mod latest;
pub mod sampler;

use crate::output::stderr_line;
use crate::pipeline::Pipeline;
use latest::Latest;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::signal::unix::{SignalKind, signal};

/// How many refreshes the agent's trends span: ten minutes at the default interval.
pub const WINDOW: u32 = 10;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot start the HTTP server: {0}")]
    Runtime(std::io::Error),
    #[error("cannot catch SIGTERM and SIGINT: {0}")]
    Signals(std::io::Error),
    #[error("cannot start the collection thread: {0}")]
    Thread(std::io::Error),
}

/// Listens on `listen`, collects with `pipeline` every interval, and serves
/// until SIGTERM or SIGINT; an error only when it cannot start.
pub fn run(pipeline: Pipeline, listen: SocketAddr) -> Result<(), ServeError> {
    let listening = |source| ServeError::Listen {
        addr: listen,
        source,
    };
    let listener = std::net::TcpListener::bind(listen).map_err(listening)?;
    listener.set_nonblocking(true).map_err(listening)?;
    let bound = listener.local_addr().map_err(listening)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(ServeError::Runtime)?;
    let _entered = runtime.enter();
    let listener = tokio::net::TcpListener::from_std(listener).map_err(ServeError::Runtime)?;
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    bound_malloc_arenas();
    let latest = Arc::new(Latest::new(sampler::starting()));
    // The first line, before the collections say anything: what it listens on.
    stderr_line(&format!(
        "connleak: serving http://{bound}/metrics, /report and /healthz; collecting every {} s",
        pipeline.plan().interval.as_secs_f64()
    ));
    let shared = Arc::clone(&latest);
    std::thread::Builder::new()
        .name("collect".into())
        .spawn(move || sampler::run(pipeline, &shared))
        .map_err(ServeError::Thread)?;
    runtime.block_on(async {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
            () = http::serve(listener, latest) => {}
        }
    });
    Ok(())
}

/// glibc gives a new thread an arena of its own, up to eight per core, and
/// each arena keeps what it freed: the fd scan's threads, new at every
/// refresh, would step the agent's memory up over its first hours, each step
/// an arena's high-water mark. Two arenas hold it level; the collection's
/// few threads barely contend.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn bound_malloc_arenas() {
    // SAFETY: mallopt only sets a parameter of the allocator; it is called
    // before the collecting thread starts.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn bound_malloc_arenas() {}
