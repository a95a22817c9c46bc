//! One sock_diag netlink datagram, and the same bytes as a tcp_info.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connleak::fuzzing::netlink(data));
