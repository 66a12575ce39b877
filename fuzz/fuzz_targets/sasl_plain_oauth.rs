//! Feeds arbitrary bytes to PLAIN and OAUTHBEARER messages and JAAS lines, as an unauthenticated client
//! could send them: errors only, never a panic. Run: `cargo fuzz run sasl_plain_oauth`.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The broker's allocator, so the fuzzer checks the defence the broker really runs.
#[global_allocator]
static ALLOC: strata::alloc::LazyHugeAlloc = strata::alloc::LazyHugeAlloc;

fuzz_target!(|data: &[u8]| {
    strata::sasl::fuzz::plain_and_oauth(data);
});
