//! A global allocator that keeps hostile array lengths from aborting the broker.
//!
//! The `kafka-protocol` decoders call `Vec::with_capacity(n)` with `n` read straight
//! from the wire, before decoding a single element (upstream PRs #152/#161/#200 are
//! open). A 14-byte DeleteRecords frame claiming 2^31 topics asks for ~24 GB; the
//! kernel's overcommit heuristic refuses it and Rust aborts the process. Our fuzz
//! target (`fuzz/`) found exactly that.
//!
//! Such an allocation is never *touched* beyond the elements that really decode, and
//! those are bounded by the frame size (`socket.request.max.bytes`). So allocations of
//! [`HUGE`] bytes or more are served by an anonymous `mmap` with `MAP_NORESERVE`: the
//! kernel reserves address space only, commits pages when they are written, and the
//! decoder then fails cleanly on the short buffer and frees the mapping. Everything
//! smaller goes to the system allocator unchanged.

use std::alloc::{GlobalAlloc, Layout, System};

/// Allocations at least this large are lazily committed mappings.
pub const HUGE: usize = 1 << 30;

pub struct LazyHugeAlloc;

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

unsafe fn map(size: usize) -> *mut u8 {
    // SAFETY: an anonymous private mapping has no preconditions; failure is MAP_FAILED.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            size,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        std::ptr::null_mut()
    } else {
        p.cast()
    }
}

fn huge(layout: &Layout) -> bool {
    layout.size() >= HUGE && layout.align() <= page_size()
}

// SAFETY: every pointer is freed by the same mechanism that allocated it, chosen by
// the layout's size, which `GlobalAlloc` guarantees is the same at free time.
unsafe impl GlobalAlloc for LazyHugeAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if huge(&layout) {
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if huge(&layout) {
            // Fresh anonymous pages are zero.
            unsafe { map(layout.size()) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if huge(&layout) {
            unsafe { libc::munmap(ptr.cast(), layout.size()) };
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !huge(&layout) && !huge(&new_layout) {
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

/// Buffers below this size come from the allocator's heap, not from a mapping of their own.
pub const MMAP_THRESHOLD: i32 = 32 << 20;
/// Free memory at the top of a heap is given back to the kernel only beyond this.
pub const TRIM_THRESHOLD: i32 = 256 << 20;

/// Tunes glibc's malloc for a broker, once, before any thread starts.
///
/// Why: remote reads and fetch answers churn buffers of about a MiB (chunks of remote
/// objects, response frames). glibc serves each from a fresh `mmap` (or trims the heap
/// right after it is freed, its dynamic thresholds only reach twice the last size), so
/// every buffer costs a page fault per 4 KiB page when it is first written: a profile of a
/// catch-up consumer showed a sixth of the broker's CPU in page faults under `memmove`.
/// Fixed thresholds keep such buffers in the heap and reuse them. The cost: up to
/// [`TRIM_THRESHOLD`] of freed memory per malloc arena stays mapped instead of returning
/// to the kernel (it is reused by the next buffers). Measured in docs/benchmarks.md
/// ("Catch-up consumer"). Other C libraries (musl) ignore this.
pub fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_reservation_is_lazy_and_usable() {
        let a = LazyHugeAlloc;
        // 64 GiB: more than this machine has; only the touched pages are committed.
        let layout = Layout::from_size_align(64 << 30, 8).unwrap();
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            *p = 7;
            *p.add((64 << 30) - 1) = 9;
            assert_eq!(*p, 7);
            let q = a.realloc(p, layout, 4096);
            assert_eq!(*q, 7);
            a.dealloc(q, Layout::from_size_align(4096, 8).unwrap());
        }
    }

    #[test]
    fn small_allocations_use_the_system_allocator() {
        let v: Vec<u8> = Vec::with_capacity(1024);
        assert!(v.capacity() >= 1024);
    }
}
