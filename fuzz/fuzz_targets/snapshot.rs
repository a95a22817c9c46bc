//! A `--from` file: the snapshot loader, then the diagnosis and every renderer.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connleak::fuzzing::snapshot(data));
