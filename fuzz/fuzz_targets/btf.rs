//! Kernel BTF, as the fd iterator reads its field offsets from it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| connleak::fuzzing::btf(data));
