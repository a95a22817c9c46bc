//! A process's threads by pool, and what each thread is blocked on.
//!
//! Threads are grouped by the stem of their name (see [`crate::threads`]),
//! the runtime's housekeeping left out, so that each pool is judged on its
//! own: "pool `pool-1-thread`: 4 of 4 threads blocked in read()". A thread
//! blocked reading a socket waits on an accepted client (the socket's local
//! port listens) or on an outgoing dependency (named by its remote address);
//! one in futex waits for a lock or for work, one in epoll_wait is an event
//! loop, one in accept is the accept loop.

use super::{Index, human_duration};
use crate::snapshot::{Process, Socket, Task, endpoint};
use crate::threads::{is_housekeeping, label, stem};
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// System calls a blocking read of a socket sits in (with a timeout: poll).
const READS: [&str; 6] = ["read", "recvfrom", "recvmsg", "recv", "poll", "ppoll"];
const EPOLL: [&str; 3] = ["epoll_wait", "epoll_pwait", "epoll_pwait2"];

/// What one thread waits on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wait {
    /// Reading a connection accepted on a local listener.
    Client,
    /// Reading a connection it opened toward this remote endpoint.
    Dependency(SocketAddr),
    Accept,
    EventLoop,
    /// futex: a lock, a condition, or a queue waiting for work.
    Lock,
    Running,
    /// Any other system call (or none known).
    Other(String),
}

/// One thread and what it waits on.
pub struct Thread<'a> {
    pub task: &'a Task,
    pub wait: Wait,
    pub socket: Option<&'a Socket>,
}

/// The threads of one name stem.
pub struct Pool<'a> {
    /// The stem as shown (`…` when the kernel may have cut the name).
    pub label: String,
    pub threads: Vec<Thread<'a>>,
}

impl Pool<'_> {
    pub fn count(&self, f: impl Fn(&Wait) -> bool) -> usize {
        self.threads.iter().filter(|t| f(&t.wait)).count()
    }

    /// Threads blocked reading a socket (a client or a dependency).
    pub fn reading(&self) -> usize {
        self.count(|w| matches!(w, Wait::Client | Wait::Dependency(_)))
    }
}

fn wait_of<'a>(index: &Index<'a>, t: &Task) -> (Wait, Option<&'a Socket>) {
    let call = t.syscall.as_deref().unwrap_or_default();
    let socket = index.thread_socket(t);
    let wait = match (call, socket) {
        ("accept" | "accept4", _) => Wait::Accept,
        (c, Some(s)) if READS.contains(&c) => {
            if s.state() == crate::tcp::TcpState::Listen {
                Wait::Accept
            } else if index.listener_for(&s.local()).is_some() {
                Wait::Client
            } else {
                Wait::Dependency(super::canonical(s.remote()))
            }
        }
        (c, _) if EPOLL.contains(&c) => Wait::EventLoop,
        ("futex", _) => Wait::Lock,
        ("", _) if t.state == "R" => Wait::Running,
        ("", _) => Wait::Other("no system call".to_string()),
        (c, _) => Wait::Other(c.to_string()),
    };
    (wait, socket.map(|p| p.socket))
}

/// The process's pools, largest first; housekeeping threads left out.
pub fn pools<'a>(index: &Index<'a>, p: &'a Process) -> Vec<Pool<'a>> {
    let mut by_stem: BTreeMap<&str, Vec<Thread>> = BTreeMap::new();
    let mut longest: BTreeMap<&str, usize> = BTreeMap::new();
    for t in p.tasks.iter().filter(|t| !is_housekeeping(&t.comm)) {
        let s = stem(&t.comm);
        let (wait, socket) = wait_of(index, t);
        by_stem.entry(s).or_default().push(Thread {
            task: t,
            wait,
            socket,
        });
        let len = longest.entry(s).or_default();
        *len = (*len).max(t.comm.len());
    }
    let mut pools: Vec<Pool> = by_stem
        .into_iter()
        .map(|(s, threads)| Pool {
            label: label(s, longest.get(s).copied().unwrap_or(0)),
            threads,
        })
        .collect();
    pools.sort_by_key(|p| std::cmp::Reverse(p.threads.len()));
    pools
}

/// The pool that serves connections: the one with most threads blocked on
/// sockets, else the largest.
pub fn workers<'p, 'a>(pools: &'p [Pool<'a>]) -> Option<&'p Pool<'a>> {
    pools
        .iter()
        .enumerate()
        .max_by_key(|(i, p)| (p.reading(), std::cmp::Reverse(*i)))
        .map(|(_, p)| p)
}

/// Whether the process serves from an event loop (Netty, asyncio, or any
/// runtime not known as such): threads in epoll_wait, none blocked reading a
/// socket or in accept.
pub fn looks_like_event_loop(pools: &[Pool]) -> bool {
    let all = |f: &dyn Fn(&Wait) -> bool| pools.iter().map(|p| p.count(f)).sum::<usize>();
    all(&|w| *w == Wait::EventLoop) > 0
        && all(&|w| matches!(w, Wait::Client | Wait::Dependency(_) | Wait::Accept)) == 0
}

/// Threads in accept(), over all pools.
pub fn accepting(pools: &[Pool]) -> usize {
    pools.iter().map(|p| p.count(|w| *w == Wait::Accept)).sum()
}

/// The dependency most threads of the pool wait on, with how many.
pub fn main_dependency(pool: &Pool) -> Option<(SocketAddr, usize)> {
    let mut by_dep: BTreeMap<SocketAddr, usize> = BTreeMap::new();
    for t in &pool.threads {
        if let Wait::Dependency(d) = t.wait {
            *by_dep.entry(d).or_default() += 1;
        }
    }
    by_dep.into_iter().max_by_key(|&(_, n)| n)
}

/// How long the sockets have been silent, as ", silent for up to D".
fn silence(sockets: &[&Socket], phrase: &str) -> String {
    sockets
        .iter()
        .filter_map(|s| s.tcp_info()?.last_data_recv_ms)
        .max()
        .map(|ms| format!(", {phrase} {}", human_duration(u64::from(ms) / 1000)))
        .unwrap_or_default()
}

/// One evidence line per pool: "pool `X`: 4 of 4 threads blocked in read()
/// on accepted clients (4 idle, silent for up to 12 s) from ...".
pub fn evidence(pool: &Pool) -> String {
    let total = pool.threads.len();
    let mut by_wait: BTreeMap<(&Wait, &str), Vec<&Thread>> = BTreeMap::new();
    for t in &pool.threads {
        let call = t.task.syscall.as_deref().unwrap_or("running");
        by_wait.entry((&t.wait, call)).or_default().push(t);
    }
    let parts: Vec<String> = by_wait
        .into_iter()
        .map(|((wait, call), ts)| {
            let n = ts.len();
            let sockets: Vec<&Socket> = ts.iter().filter_map(|t| t.socket).collect();
            match wait {
                Wait::Client => {
                    let idle = sockets.iter().filter(|s| s.recv_q() == 0).count();
                    let peers: Vec<String> = sockets
                        .iter()
                        .take(3)
                        .map(|s| endpoint(&s.remote()))
                        .collect();
                    format!(
                        "{n} of {total} threads blocked in {call}() on accepted clients ({idle} \
                         idle{}) from {}{}",
                        silence(&sockets, "silent for up to"),
                        peers.join(", "),
                        if sockets.len() > 3 { ", ..." } else { "" }
                    )
                }
                Wait::Dependency(dep) => format!(
                    "{n} of {total} threads blocked in {call}() waiting on {} (an outgoing \
                     dependency){}",
                    endpoint(dep),
                    silence(&sockets, "no answer for up to")
                ),
                _ => {
                    let wchan = ts.iter().find_map(|t| t.task.wchan.clone());
                    let call = match wait {
                        Wait::Other(c) => c.as_str(),
                        Wait::Running => "running",
                        _ => call,
                    };
                    let shown = if call == "running" || call == "no system call" {
                        call.to_string()
                    } else {
                        format!("{call}()")
                    };
                    let unresolved =
                        matches!(call, "poll" | "ppoll") && ts.iter().any(|t| t.task.fd.is_none());
                    format!(
                        "{n} of {total} threads in {shown}{}{}",
                        wchan.map(|w| format!(" (kernel: {w})")).unwrap_or_default(),
                        if unresolved {
                            "; the fds they poll are unknown (/proc/PID/mem was not readable)"
                        } else {
                            ""
                        }
                    )
                }
            }
        })
        .collect();
    format!("pool `{}`: {}", pool.label, parts.join("; "))
}
