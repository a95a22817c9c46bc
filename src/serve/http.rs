//! The agent's HTTP side: three read-only routes over HTTP/1.1, bounded
//! against slow and hostile clients.
//!
//! hyper's HTTP/1 connection on a current-thread tokio runtime: one thread
//! multiplexes every connection, so a client that sends nothing, or one
//! byte a second, holds a few kilobytes and a slot, never a thread, and
//! never delays another scrape. The bounds:
//!
//! - at most [`MAX_CONNECTIONS`] at once; one more is closed as soon as it
//!   is accepted, never queued in memory (the kernel's backlog holds the
//!   rest);
//! - the request head must arrive within [`HEADER_READ_TIMEOUT`] (hyper
//!   starts that clock when it waits for a head, so an idle keep-alive
//!   connection is closed by it too);
//! - the head may not exceed [`MAX_HEAD`] bytes (hyper answers 431);
//! - a connection lives at most [`CONNECTION_DEADLINE`]: a client that stops
//!   reading its response is cut there (the write timeout).
//!
//! Requests are answered from the bytes the last collection left
//! ([`super::latest`]); nothing a client sends is ever read but the head.

use super::latest::{Health, Latest, Served};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 128;
/// Time a client has to send a request's head, from when one is awaited.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection's whole life, its responses written included.
pub const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);
/// The read buffer, and so the largest request head: hyper's smallest.
pub const MAX_HEAD: usize = 8192;

/// Pause after a failed accept (out of fds): the loop must not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves `latest` on `listener` until the future is dropped.
pub async fn serve(listener: TcpListener, latest: Arc<Latest>) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEAD);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        // Full: closed at once (dropped), so that memory does not grow with clients.
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            continue;
        };
        let latest = Arc::clone(&latest);
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let response = answer(req.method(), req.uri().path(), &latest.get());
            async move { Ok::<_, Infallible>(response) }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            // An error or the deadline ends the connection; nothing to tell.
            let _ = tokio::time::timeout(CONNECTION_DEADLINE, connection).await;
            drop(slot);
        });
    }
}

/// The Prometheus text format's content type.
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The response to `method` on `path`, from the bodies being served:
/// GET and HEAD on `/metrics`, `/report` and `/healthz`, 405 for another
/// method there, 404 anywhere else. (hyper sends no body for HEAD.)
pub fn answer(method: &Method, path: &str, served: &Served) -> Response<Full<Bytes>> {
    let known = ["/metrics", "/report", "/healthz"].contains(&path);
    if !known {
        return text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics, /report or /healthz\n",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match (path, &served.report, &served.health) {
        ("/metrics", _, _) => body(StatusCode::OK, PROMETHEUS_TEXT, served.metrics.clone()),
        ("/report", Some(report), _) => body(StatusCode::OK, "application/json", report.clone()),
        ("/report", None, _) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no collection has succeeded yet\n",
        ),
        (_, _, Health::Ok) => text(StatusCode::OK, "ok\n"),
        (_, _, Health::Starting) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "starting: no collection has finished yet\n",
        ),
        (_, _, Health::Failing(reason)) => body(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain; charset=utf-8",
            Bytes::from(format!("the last collection failed: {reason}\n")),
        ),
    }
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    body(
        status,
        "text/plain; charset=utf-8",
        Bytes::from_static(message.as_bytes()),
    )
}

fn body(status: StatusCode, content_type: &'static str, bytes: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(bytes));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn served(health: Health, report: Option<&'static str>) -> Served {
        Served {
            metrics: Bytes::from_static(b"connleak_up 1\n"),
            report: report.map(|r| Bytes::from_static(r.as_bytes())),
            health,
        }
    }

    fn status(method: Method, path: &str, s: &Served) -> u16 {
        answer(&method, path, s).status().as_u16()
    }

    #[test]
    fn three_read_only_routes() {
        let ok = served(Health::Ok, Some("{}"));
        for path in ["/metrics", "/report", "/healthz"] {
            assert_eq!(status(Method::GET, path, &ok), 200, "{path}");
            assert_eq!(status(Method::HEAD, path, &ok), 200, "{path}");
            assert_eq!(status(Method::POST, path, &ok), 405, "{path}");
            assert_eq!(status(Method::DELETE, path, &ok), 405, "{path}");
        }
        for path in ["/", "/metrics/", "/../etc/passwd", "/favicon.ico"] {
            assert_eq!(status(Method::GET, path, &ok), 404, "{path}");
        }
        let r = answer(&Method::GET, "/metrics", &ok);
        assert_eq!(r.headers()[CONTENT_TYPE], PROMETHEUS_TEXT);
    }

    #[test]
    fn health_follows_the_last_collection() {
        let starting = served(Health::Starting, None);
        assert_eq!(status(Method::GET, "/healthz", &starting), 503);
        assert_eq!(status(Method::GET, "/report", &starting), 503);
        assert_eq!(status(Method::GET, "/metrics", &starting), 200);
        // A failure keeps the last report, and says so on /healthz.
        let failing = served(Health::Failing("gone".into()), Some("{}"));
        assert_eq!(status(Method::GET, "/healthz", &failing), 503);
        assert_eq!(status(Method::GET, "/report", &failing), 200);
    }
}
