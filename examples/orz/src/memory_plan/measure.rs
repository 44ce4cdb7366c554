//! Measuring what the plan predicts: a counting global allocator ([`PeakAlloc`]) for backends
//! whose tensors live on the Rust heap (candle's CPU storage, the reference), the peak resident
//! set of the process for libtorch (whose CPU allocator is not Rust's), and the workloads the
//! plan models (one pack's training backprop, one generation step) at a given shape.
//!
//! A binary installs the allocator with `#[global_allocator] static A: PeakAlloc = PeakAlloc::new();`
//! (the memory benchmark and the growth-law test do).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The system allocator, counting live bytes and their peak since the last
/// [`PeakAlloc::reset_peak`].
#[derive(Debug)]
pub struct PeakAlloc {
    current: AtomicUsize,
    peak: AtomicUsize,
}

impl PeakAlloc {
    /// A counter at zero.
    pub const fn new() -> PeakAlloc {
        PeakAlloc { current: AtomicUsize::new(0), peak: AtomicUsize::new(0) }
    }

    /// Bytes allocated and not yet freed.
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    /// The most bytes live at once since the last reset.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Starts a new peak from the bytes live now.
    pub fn reset_peak(&self) {
        self.peak.store(self.current(), Ordering::Relaxed);
    }

    /// The peak of live bytes while `f` runs, above those live when it starts, and `f`'s result.
    pub fn peak_during<R>(&self, f: impl FnOnce() -> R) -> (usize, R) {
        let base = self.current();
        self.reset_peak();
        let out = f();
        (self.peak().saturating_sub(base), out)
    }

    fn added(&self, size: usize) {
        let now = self.current.fetch_add(size, Ordering::Relaxed) + size;
        self.peak.fetch_max(now, Ordering::Relaxed);
    }
}

impl Default for PeakAlloc {
    fn default() -> Self {
        PeakAlloc::new()
    }
}

// SAFETY: every call forwards to the system allocator with the caller's layout unchanged; the
// counters are plain atomics and never affect what is returned.
#[allow(unsafe_code, reason = "a GlobalAlloc must be an unsafe impl; it only forwards to System")]
unsafe impl GlobalAlloc for PeakAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see above).
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            self.added(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded as is (see above).
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            self.added(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is (see above).
        unsafe { System.dealloc(ptr, layout) };
        self.current.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded as is (see above).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            self.current.fetch_sub(layout.size(), Ordering::Relaxed);
            self.added(new_size);
        }
        p
    }
}

/// A `kB` field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())?;
    Some(kb * 1024)
}

/// The peak resident set of this process (`VmHWM` of `/proc/self/status`), in bytes.
pub fn peak_rss() -> Option<u64> {
    status_bytes("VmHWM:")
}

/// The resident set of this process now (`VmRSS`), in bytes.
pub fn rss() -> Option<u64> {
    status_bytes("VmRSS:")
}

/// Resets the peak resident set to the current one (Linux: `5` into `/proc/self/clear_refs`).
pub fn reset_peak_rss() -> std::io::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")
}

/// Hands the C heap's free memory back to the system (glibc's `malloc_trim(0)`; a no-op
/// elsewhere), so that a resident-set measurement that follows starts from live memory only:
/// memory freed earlier but kept by the allocator would otherwise be reused unseen.
pub fn release_free_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    glibc_malloc_trim();
}

/// glibc's `malloc_trim(0)`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code, reason = "a call into glibc, which has no safe binding in std")]
fn glibc_malloc_trim() {
    unsafe extern "C" {
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: `malloc_trim` takes a byte count, only releases free pages of glibc's own heap and
    // may be called at any time from any thread.
    unsafe {
        malloc_trim(0);
    }
}
