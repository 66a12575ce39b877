//! Feeds arbitrary bytes to a SCRAM exchange (client-first, then client-final), as an unauthenticated client
//! could send them: errors only, never a panic. Run: `cargo fuzz run sasl_scram`.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The broker's allocator, so the fuzzer checks the defence the broker really runs.
#[global_allocator]
static ALLOC: strata::alloc::LazyHugeAlloc = strata::alloc::LazyHugeAlloc;

fuzz_target!(|data: &[u8]| {
    strata::sasl::fuzz::scram_exchange(data);
});
