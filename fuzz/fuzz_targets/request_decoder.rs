//! Feeds arbitrary frames to the request decoder: it must return an error, never
//! panic, loop or allocate without bound. Run: `cargo fuzz run request_decoder`.
#![no_main]

use libfuzzer_sys::fuzz_target;

// The broker's allocator, so the fuzzer checks the defence the broker really runs.
#[global_allocator]
static ALLOC: strata::alloc::LazyHugeAlloc = strata::alloc::LazyHugeAlloc;

fuzz_target!(|data: &[u8]| {
    let _ = strata::protocol::decode_request(bytes::Bytes::copy_from_slice(data));
});
