//! The fix in the words of the runtime in front of us.
//!
//! A suggestion is read by someone who must change code or configuration
//! now: "add read timeouts" helps less than `Socket.setSoTimeout`, and the
//! usual way to see a Go process's goroutines (`kill -QUIT`) ends it. Each
//! rule names what is needed ([`Need`]); this module holds the one phrase per
//! runtime and need, appended to the rule's generic text. Unknown runtimes
//! keep the generic text alone.

use super::{CloseWaitCause, ConnSide};
use crate::snapshot::{Library, Process, Runtime};

/// What the fix has to do, whatever the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Close the connection when the peer closed (and on every error path).
    CloseOnEof,
    /// Evict idle pooled client connections before the server closes them.
    StalePool,
    /// Close (and drain) every response the client got.
    CloseResponse,
    /// Bound how long a server keeps an idle or silent client.
    ServerIdleTimeout,
    /// Put a timeout and a bulkhead on calls toward a dependency.
    DependencyTimeout,
    /// Reuse client connections instead of opening one per request.
    ConnectionReuse,
    /// See what the threads wait on.
    ThreadDump,
    /// Find what keeps an event loop from reading.
    EventLoop,
}

impl Need {
    /// What a CLOSE_WAIT cause needs, on this side, from this owner.
    pub fn of_close_wait(cause: CloseWaitCause, side: ConnSide, owner: Option<&Process>) -> Need {
        match (cause, side) {
            (CloseWaitCause::NeverClosedAfterEof, _) => Need::CloseOnEof,
            (CloseWaitCause::UnreadAfterPeerClose, ConnSide::Client) => Need::StalePool,
            (CloseWaitCause::ResponseNotClosed, _) => Need::CloseResponse,
            (CloseWaitCause::UnreadAfterPeerClose, ConnSide::Server) => Need::ServerIdleTimeout,
            // A stuck accept loop, like unread requests, is seen in what the threads do.
            (CloseWaitCause::RequestNeverRead | CloseWaitCause::NeverAccepted, _)
                if owner
                    .and_then(|p| p.runtime)
                    .is_some_and(Runtime::is_event_loop) =>
            {
                Need::EventLoop
            }
            (CloseWaitCause::RequestNeverRead | CloseWaitCause::NeverAccepted, _) => {
                Need::ThreadDump
            }
        }
    }
}

/// `generic`, followed by the idiom of `owner`'s runtime when there is one
/// (with its pid in place of `PID`).
pub fn suggest(generic: &str, owner: Option<&Process>, need: Need) -> String {
    let Some((p, runtime)) = owner.and_then(|p| Some((p, p.runtime?))) else {
        return generic.to_string();
    };
    // The pool libraries seen in the process speak for the runtime where they can.
    let libraries: Vec<String> = p
        .libraries
        .iter()
        .filter_map(|&l| {
            Some(format!(
                "With {} (seen in the process): {}",
                l.name(),
                library_phrase(l, need)?
            ))
        })
        .collect();
    if !libraries.is_empty() {
        return format!("{generic} {}", libraries.join(" "));
    }
    match phrase(runtime, need) {
        Some(idiom) => format!(
            "{generic} {}: {}",
            title(runtime),
            idiom.replace("PID", &p.pid.to_string())
        ),
        None => generic.to_string(),
    }
}

/// A pool library's own settings for a need, where they differ from the
/// runtime's usual ones.
fn library_phrase(library: Library, need: Need) -> Option<&'static str> {
    if need != Need::StalePool {
        return None;
    }
    Some(match library {
        Library::Hikaricp => {
            "set maxLifetime a few seconds below the server's idle or connection timeout \
             (PostgreSQL idle_session_timeout, MySQL wait_timeout, a firewall's idle timeout); \
             idleTimeout retires only connections above minimumIdle, so it does nothing in a \
             fixed-size pool; from HikariCP 4, keepaliveTime also tests idle connections."
        }
        Library::CommonsPool => {
            "set testWhileIdle with timeBetweenEvictionRunsMillis (and a validationQuery for \
             DBCP2), and minEvictableIdleTimeMillis and maxConnLifetimeMillis below the server's \
             idle timeout."
        }
        Library::C3p0 => {
            "set maxIdleTime (or maxConnectionAge) below the server's idle timeout, and \
             idleConnectionTestPeriod so that idle connections are tested."
        }
        Library::TomcatJdbc => {
            "set testWhileIdle with a validationQuery and timeBetweenEvictionRunsMillis, and \
             maxAge below the server's idle timeout."
        }
        Library::Okhttp => {
            "give the OkHttpClient a ConnectionPool whose keepAliveDuration is below the \
             server's keep-alive timeout (OkHttp's default is 5 minutes)."
        }
        Library::Libpq => {
            "libpq itself does not pool, the application does: psycopg_pool's max_idle and \
             max_lifetime below the server's timeout, with check=ConnectionPool.check_connection; \
             SQLAlchemy's pool_recycle and pool_pre_ping."
        }
    })
}

fn title(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Jvm => "On the JVM",
        Runtime::Go => "In Go",
        Runtime::Node => "In Node",
        Runtime::Python => "In Python",
        Runtime::Nginx => "In nginx",
    }
}

const GO_DUMP: &str = "a goroutine profile from net/http/pprof (/debug/pprof/goroutine?debug=2) \
                       shows where the goroutines wait; never send kill -QUIT, which ends a Go \
                       process.";

/// The runtime's idiom for a need, if it has one worth naming.
fn phrase(runtime: Runtime, need: Need) -> Option<&'static str> {
    Some(match (runtime, need) {
        (Runtime::Jvm, Need::CloseOnEof) => {
            "close every Socket, stream and HTTP response in try-with-resources, also on \
             exceptions (OkHttp: response.close(); Apache HttpClient: EntityUtils.consume); \
             `jcmd PID Thread.print` shows where the handlers sit."
        }
        (Runtime::Jvm, Need::StalePool) => {
            "evict idle connections before the server's keep-alive timeout: HikariCP \
             maxLifetime below it, OkHttp ConnectionPool keepAliveDuration, Apache HttpClient \
             evictIdleConnections."
        }
        (Runtime::Jvm, Need::ServerIdleTimeout) => {
            "set Socket.setSoTimeout on accepted sockets (Tomcat connectionTimeout and \
             keepAliveTimeout, Jetty idleTimeout) and close them in try-with-resources; \
             `jcmd PID Thread.print` shows the pool's threads."
        }
        (Runtime::Jvm, Need::DependencyTimeout) => {
            "set connect and read timeouts toward it (JDBC socketTimeout, HikariCP \
             connectionTimeout, OkHttp callTimeout, HttpClient request timeouts) and give it a \
             bulkhead (its own bounded executor or a Semaphore); `jcmd PID Thread.print` shows \
             the call sites."
        }
        (Runtime::Jvm, Need::ConnectionReuse) => {
            "share one HttpClient or OkHttpClient (and one DataSource pool) for the process \
             instead of one per request, and close each response so its connection returns to \
             the pool."
        }
        (Runtime::Jvm, Need::ThreadDump) => {
            "`jcmd PID Thread.print` (or jstack PID) shows what each thread of the pool waits on."
        }
        (Runtime::Jvm, Need::EventLoop) => {
            "a Netty handler must not block its event-loop thread: move blocking calls to a \
             separate executor; `jcmd PID Thread.print` shows the event-loop threads' stacks."
        }
        (Runtime::Go, Need::CloseOnEof) => {
            "close every response body (defer resp.Body.Close() after the error check) and every \
             net.Conn on EOF; a goroutine profile from net/http/pprof shows who holds them; never \
             send kill -QUIT, which ends a Go process."
        }
        (Runtime::Go, Need::StalePool) => {
            "set http.Transport.IdleConnTimeout below the server's keep-alive timeout and bound \
             MaxIdleConnsPerHost; for database/sql, SetConnMaxIdleTime and SetConnMaxLifetime."
        }
        (Runtime::Go, Need::CloseResponse) => {
            "defer resp.Body.Close() right after the error check of every http.Get/Do, on \
             every path (also on non-2xx statuses), and io.Copy(io.Discard, resp.Body) before \
             closing to reuse the connection; for a stream, cancel its context. \
             http.Transport.IdleConnTimeout does not reach a connection whose body is open. A \
             goroutine profile from net/http/pprof shows where the responses are held."
        }
        (Runtime::Node, Need::CloseResponse) => {
            "consume every response (res.resume() when the body is not needed, or read it to \
             'end'), and res.destroy() or req.destroy() on errors and aborts: a response never \
             read keeps its socket paused, out of the agent's reach."
        }
        (Runtime::Go, Need::ServerIdleTimeout) => {
            "set http.Server ReadHeaderTimeout, ReadTimeout and IdleTimeout; on a raw net.Conn, \
             SetReadDeadline, and close on EOF."
        }
        (Runtime::Go, Need::DependencyTimeout) => {
            "give every call toward it a deadline (context.WithTimeout, http.Client.Timeout, \
             net.Dialer.Timeout) and bound them with a semaphore; a goroutine profile from \
             net/http/pprof shows where they wait; never send kill -QUIT, which ends a Go process."
        }
        (Runtime::Go, Need::ConnectionReuse) => {
            "share one http.Client, and read each resp.Body to EOF before Close() (io.Copy(io.Discard, \
             resp.Body)): a body not drained keeps its connection from the pool, so every request \
             dials anew; raise Transport.MaxIdleConnsPerHost (default 2) for busy hosts."
        }
        (Runtime::Go, Need::ThreadDump) => GO_DUMP,
        (Runtime::Go, Need::EventLoop) => {
            "a handler blocks or never returns: a goroutine profile from net/http/pprof \
             (/debug/pprof/goroutine?debug=2) shows the goroutines parked in it; set http.Server \
             ReadTimeout and deadlines in handlers; never send kill -QUIT, which ends a Go process."
        }
        (Runtime::Python, Need::CloseOnEof) => {
            "open sockets and responses in `with` blocks (with requests.get(...) as r, with \
             socket.create_connection(...) as s), which close them also on exceptions; \
             `py-spy dump --pid PID` shows where the threads sit."
        }
        (Runtime::Python, Need::StalePool) => {
            "use one requests.Session with a bounded HTTPAdapter(pool_maxsize=...) and close it \
             when done, retry on stale connections (urllib3 Retry); for SQLAlchemy pools, \
             pool_recycle and pool_pre_ping."
        }
        (Runtime::Python, Need::ServerIdleTimeout) => {
            "call settimeout() on accepted sockets (gunicorn --keep-alive and --timeout) and \
             close them in a `with` block; `py-spy dump --pid PID` shows the workers."
        }
        (Runtime::Python, Need::DependencyTimeout) => {
            "pass a timeout to every call toward it (requests timeout=(connect, read), \
             socket.settimeout, the driver's connect_timeout) and bound concurrent calls with a \
             semaphore; `py-spy dump --pid PID` shows the call sites."
        }
        (Runtime::Python, Need::ConnectionReuse) => {
            "send requests through one requests.Session (or one httpx.Client) instead of \
             requests.get() per call, so urllib3 reuses its pooled connections."
        }
        (Runtime::Python, Need::ThreadDump) => {
            "`py-spy dump --pid PID` shows what each thread waits on."
        }
        (Runtime::Python, Need::EventLoop) => {
            "an asyncio handler blocks the loop (a synchronous call) or awaits something that \
             never completes: `py-spy dump --pid PID` shows it; wrap awaits in \
             asyncio.wait_for, and run with asyncio debug mode to log slow callbacks."
        }
        (Runtime::Node, Need::CloseOnEof) => {
            "with allowHalfOpen: true, call socket.end() in the 'end' handler (or leave \
             allowHalfOpen off), and socket.destroy() on errors and timeouts."
        }
        (Runtime::Node, Need::StalePool) => {
            "give the http.Agent keepAlive with a timeout below the server's keep-alive timeout \
             (new http.Agent({keepAlive: true, timeout, maxSockets})), and consume or destroy \
             every response."
        }
        (Runtime::Node, Need::ServerIdleTimeout) => {
            "set server.keepAliveTimeout, headersTimeout and requestTimeout, or socket.setTimeout() \
             with socket.destroy() in its 'timeout' handler."
        }
        (Runtime::Node, Need::DependencyTimeout) => {
            "give requests toward it a timeout (AbortSignal.timeout, or request.setTimeout with \
             destroy) and bound them with the agent's maxSockets."
        }
        (Runtime::Node, Need::ConnectionReuse) => {
            "use an http.Agent with keepAlive: true (the default agent before Node 19 closes \
             every connection) and consume every response body."
        }
        (Runtime::Node, Need::ThreadDump) => {
            "open the inspector (kill -USR1 PID, or node --inspect) and take a CPU profile to see \
             where the event loop is busy."
        }
        (Runtime::Node, Need::EventLoop) => {
            "a handler blocks the event loop (synchronous I/O, a long computation) or a socket \
             was paused and never resumed: profile with node --cpu-prof or the inspector (kill \
             -USR1 PID), look for socket.pause() without resume(), set server.requestTimeout."
        }
        (Runtime::Nginx, Need::ServerIdleTimeout) => {
            "keepalive_timeout, client_header_timeout and client_body_timeout bound idle clients."
        }
        (Runtime::Nginx, Need::StalePool) => {
            "keep the upstream block's keepalive_timeout below the upstream server's keep-alive \
             timeout."
        }
        (Runtime::Nginx, Need::EventLoop) => {
            "a worker is blocked (a slow disk, a blocking module) or out of worker_connections: \
             see the error log, worker_connections and worker_processes."
        }
        // Their clients do not read idle pooled connections: no such cause there.
        (Runtime::Jvm | Runtime::Python, Need::CloseResponse) | (Runtime::Nginx, _) => {
            return None;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_never_gets_kill_quit_advice() {
        for need in [Need::ThreadDump, Need::EventLoop, Need::DependencyTimeout] {
            let text = phrase(Runtime::Go, need).unwrap_or_default();
            assert!(text.contains("never send kill -QUIT"), "{text}");
        }
    }
}
