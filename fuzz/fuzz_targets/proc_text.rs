//! The text of any /proc file connleak reads, through each of its parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connleak::fuzzing::proc_text(data));
