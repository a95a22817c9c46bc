//! What a server's last words likely are: the bytes it sent just before its
//! FIN, which a client's stale pooled connection holds unread.
//!
//! On the client side, Recv-Q > 1 in CLOSE-WAIT is never a request: it is the
//! server's goodbye (a TLS close_notify alert, a database's idle-timeout
//! error, an HTTP/2 GOAWAY) that nobody read because nobody reads an idle
//! pooled connection. Where the size (or the server's port) says which, the
//! evidence names it; where it does not, it says only what is certain.

/// The sizes of a TLS close_notify alert record: 23 bytes (TLS 1.2 with
/// ChaCha20-Poly1305), 24 (TLS 1.3), 31 (TLS 1.2 with AES-GCM).
const TLS_CLOSE_NOTIFY: std::ops::RangeInclusive<u32> = 23..=31;
/// A cleartext HTTP/2 GOAWAY frame without debug data: a 9-byte header and 8 bytes.
const H2_GOAWAY: u32 = 17;

/// What `bytes` unread bytes (the FIN not counted) from a server on `port`
/// likely are, when their size or the port says it honestly.
pub fn guess(bytes: u32, port: u16) -> Option<&'static str> {
    if TLS_CLOSE_NOTIFY.contains(&bytes) {
        return Some(
            "the size of a TLS close_notify alert (23-31 bytes): the server ended the TLS \
             session politely, then closed",
        );
    }
    if bytes == H2_GOAWAY {
        return Some("the size of an HTTP/2 GOAWAY frame: the server told the client to go away");
    }
    match port {
        3306 => Some("from MySQL's port: likely its idle-timeout error (wait_timeout)"),
        5432 => Some(
            "from PostgreSQL's port: likely its idle-session timeout error \
             (idle_session_timeout)",
        ),
        _ => None,
    }
}

/// Well-known ports of servers that speak a protocol of their own (databases,
/// caches, brokers), whose clients are drivers with pools of their own, not
/// an HTTP client.
const OWN_PROTOCOL_PORTS: &[u16] = &[
    1433,  // SQL Server
    1521,  // Oracle
    2181,  // ZooKeeper
    3306,  // MySQL
    4222,  // NATS
    5432,  // PostgreSQL
    5672,  // AMQP
    6379,  // Redis
    9042,  // Cassandra
    9092,  // Kafka
    11211, // memcached
    27017, // MongoDB
];

/// Whether a server on `port` speaks a protocol of its own rather than HTTP.
pub fn speaks_its_own_protocol(port: u16) -> bool {
    OWN_PROTOCOL_PORTS.contains(&port)
}

/// The guess that holds for the smallest and the largest of a group's sizes, if one does.
pub fn guess_range(min: u32, max: u32, port: u16) -> Option<&'static str> {
    let g = guess(min, port)?;
    (guess(max, port) == Some(g)).then_some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ports_that_say_something() {
        assert!(guess(24, 443).is_some_and(|g| g.contains("close_notify")));
        assert!(guess(31, 8443).is_some_and(|g| g.contains("close_notify")));
        assert!(guess(17, 80).is_some_and(|g| g.contains("GOAWAY")));
        assert!(guess(120, 5432).is_some_and(|g| g.contains("PostgreSQL")));
        assert!(guess(120, 3306).is_some_and(|g| g.contains("MySQL")));
        assert_eq!(guess(120, 8080), None);
        assert!(guess_range(24, 31, 443).is_some());
        // A mix of a TLS alert and something longer has no single reading.
        assert_eq!(guess_range(24, 60, 443), None);
    }
}
