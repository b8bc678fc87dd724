//! [`HugePageAlloc`]: the global allocator of `boursed` (and of the benchmarks that run its stages),
//! which backs every large allocation with transparent huge pages.
//!
//! # Why
//! The engine's tables are large and read at random: the live-order index alone is `2 x orders_max`
//! slots (64 MiB for 4 M orders), and the order arena, the token table and the snapshot book's reference
//! index are of the same order. With 4 KiB pages almost every lookup also misses the TLB, and the page
//! walk's own reads miss the cache: in the saturated daemon's profile the core's prefetch of the next
//! command's index slot was the hottest instruction of the core stage, which is what a prefetch does when
//! its address needs a page walk. A 2 MiB page covers 512 times as much per TLB entry.
//!
//! Debian's default (`/sys/kernel/mm/transparent_hugepage/enabled` = `madvise`) gives huge pages only to
//! mappings that ask with `madvise(MADV_HUGEPAGE)`, and the system allocator never asks. So allocations
//! of at least [`HUGE_BYTES_MIN`] are mapped here directly: `mmap` of the size rounded up to 2 MiB, on a
//! 2 MiB boundary, then `madvise(MADV_HUGEPAGE)`. Everything smaller goes to the system allocator.
//! Where the kernel has THP off (`never`), the advice is ignored and the mapping is ordinary memory:
//! nothing depends on getting huge pages, only speed. `AnonHugePages` in `/proc/PID/smaps_rollup`
//! shows how much was granted.
//!
//! # Invariants
//! Whether a block is ours or the system allocator's is decided from its layout alone
//! ([`HugePageAlloc::is_huge`]): Rust gives `dealloc` and `realloc` the layout the block was allocated
//! with, so both sides always agree. A failed `mmap` returns null (the caller's allocation error), as
//! any allocator does.
#![allow(
    unsafe_code,
    reason = "a global allocator: mmap, munmap and madvise; each block has a SAFETY comment"
)]

use std::alloc::{GlobalAlloc, Layout, System};

/// Smallest allocation mapped with huge pages: smaller ones would waste most of a 2 MiB page.
pub const HUGE_BYTES_MIN: usize = 4 << 20;
/// Transparent huge page size on x86_64.
pub const HUGE_PAGE_BYTES: usize = 2 << 20;

/// Large allocations on transparent huge pages, the rest from [`System`] (see the module header).
#[derive(Clone, Copy, Debug, Default)]
pub struct HugePageAlloc;

impl HugePageAlloc {
    /// True when a block of `layout` is (or would be) mapped here rather than by [`System`].
    #[inline]
    pub fn is_huge(layout: Layout) -> bool {
        layout.size() >= HUGE_BYTES_MIN && layout.align() <= HUGE_PAGE_BYTES
    }

    /// Bytes mapped for a huge block of `size` bytes.
    fn mapped_bytes(size: usize) -> usize {
        size.div_ceil(HUGE_PAGE_BYTES) * HUGE_PAGE_BYTES
    }

    /// Maps `size` bytes (rounded up to 2 MiB) on a 2 MiB boundary with `MADV_HUGEPAGE`; null on
    /// failure. The memory is zeroed (fresh anonymous pages).
    fn map(size: usize) -> *mut u8 {
        let bytes = Self::mapped_bytes(size);
        let Some(over) = bytes.checked_add(HUGE_PAGE_BYTES) else {
            return std::ptr::null_mut();
        };
        // SAFETY: an anonymous private mapping at an address the kernel chooses; no existing memory is
        // touched.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                over,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let start = raw as usize;
        let aligned = start.next_multiple_of(HUGE_PAGE_BYTES);
        let head = aligned - start;
        let tail = over - head - bytes;
        // SAFETY: [start, aligned) and [aligned + bytes, start + over) lie inside the mapping just made
        // and nothing refers to them; unmapping them leaves exactly [aligned, aligned + bytes).
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((aligned + bytes) as *mut libc::c_void, tail);
            }
            // Advice only: an error (THP compiled out) leaves ordinary pages, which is still correct.
            libc::madvise(aligned as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE);
        }
        aligned as *mut u8
    }
}

// SAFETY: `alloc` returns null or a block of at least `layout.size()` bytes aligned to `layout.align()`
// (System's, or a fresh mapping on a 2 MiB boundary, which satisfies every alignment up to 2 MiB);
// `dealloc` frees a block with the allocator that made it, decided from the layout as at allocation.
unsafe impl GlobalAlloc for HugePageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if Self::is_huge(layout) {
            Self::map(layout.size())
        } else {
            // SAFETY: forwarded with the caller's layout (non-zero size, per GlobalAlloc's contract).
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if Self::is_huge(layout) {
            // Fresh anonymous pages are zero.
            Self::map(layout.size())
        } else {
            // SAFETY: as in `alloc`.
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if Self::is_huge(layout) {
            // SAFETY: `ptr` came from `map(layout.size())`, which mapped exactly this many bytes there.
            unsafe {
                libc::munmap(ptr.cast(), Self::mapped_bytes(layout.size()));
            }
        } else {
            // SAFETY: `ptr` came from System with this layout.
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract: `new_size` is non-zero and, rounded to the alignment, does not
        // overflow isize.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !Self::is_huge(layout) && !Self::is_huge(new_layout) {
            // SAFETY: both blocks are System's; forwarded with the caller's arguments.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: a block of `new_layout` from this allocator; the old block is valid for
        // `layout.size()` bytes and the two do not overlap; the old one is freed with its own layout.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_blocks_are_aligned_zeroed_and_writable() {
        let a = HugePageAlloc;
        for size in [HUGE_BYTES_MIN, HUGE_BYTES_MIN + 1, 3 * HUGE_PAGE_BYTES + 17] {
            let layout = Layout::from_size_align(size, 64).unwrap();
            assert!(HugePageAlloc::is_huge(layout));
            // SAFETY: a non-zero layout; the block is written within its size and freed with the
            // same layout.
            unsafe {
                let p = a.alloc_zeroed(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % HUGE_PAGE_BYTES, 0);
                let block = std::slice::from_raw_parts_mut(p, size);
                assert!(block.iter().all(|&b| b == 0));
                block[0] = 1;
                block[size - 1] = 2;
                a.dealloc(p, layout);
            }
        }
    }

    #[test]
    fn realloc_across_the_threshold_keeps_the_bytes() {
        let a = HugePageAlloc;
        let small = Layout::from_size_align(4096, 8).unwrap();
        // SAFETY: each block is written within its size and freed with the layout it has.
        unsafe {
            let p = a.alloc(small);
            assert!(!p.is_null());
            for i in 0..4096 {
                *p.add(i) = (i % 251) as u8;
            }
            // Grow into a huge block, then shrink back to a small one.
            let big = a.realloc(p, small, HUGE_BYTES_MIN * 2);
            assert!(!big.is_null());
            assert_eq!(big as usize % HUGE_PAGE_BYTES, 0);
            assert!((0..4096).all(|i| *big.add(i) == (i % 251) as u8));
            *big.add(HUGE_BYTES_MIN * 2 - 1) = 7;
            let big_layout = Layout::from_size_align(HUGE_BYTES_MIN * 2, 8).unwrap();
            let back = a.realloc(big, big_layout, 100);
            assert!(!back.is_null());
            assert!((0..100).all(|i| *back.add(i) == (i % 251) as u8));
            a.dealloc(back, Layout::from_size_align(100, 8).unwrap());
        }
    }

    #[test]
    fn over_aligned_blocks_go_to_the_system_allocator() {
        let layout = Layout::from_size_align(HUGE_BYTES_MIN, HUGE_PAGE_BYTES * 2).unwrap();
        assert!(!HugePageAlloc::is_huge(layout));
        assert!(!HugePageAlloc::is_huge(
            Layout::from_size_align(HUGE_BYTES_MIN - 1, 8).unwrap()
        ));
    }
}
