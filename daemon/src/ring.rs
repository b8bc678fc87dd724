//! A bounded single-producer single-consumer ring for fixed-size `Copy` records between pipeline stages.
//!
//! # Layout
//! One pre-allocated slot array whose capacity is a power of two, and two cursors on their own cache lines:
//! `tail` (next slot the producer writes, written only by the producer) and `head` (next slot the consumer
//! reads, written only by the consumer). Each side keeps a private copy of the other's cursor and reloads it
//! only when the ring looks full (producer) or empty (consumer), so in steady state a push or pop touches one
//! shared cache line.
//!
//! # Ordering invariant
//! `head <= tail <= head + capacity`, both counting pushes and pops since creation (they never wrap in
//! practice: `u64` at 10^9 records per second lasts 584 years). The producer writes the slot and then
//! publishes `tail` with `Release`; the consumer reads `tail` with `Acquire` before reading the slot, and
//! publishes `head` with `Release` after it has copied the record out.
//!
//! # Staging
//! [`Producer::stage`] writes a record into the next free slot without publishing it: the consumer sees it
//! only at [`Producer::publish`] or the next push (which publishes everything staged before it). The core
//! builds its outputs in place this way and publishes them once the journal has released them.
//!
//! # Back-pressure
//! A full ring is a value ([`Full`]), never a block or a growth: the caller decides (ingress stops reading its
//! sockets).
#![allow(unsafe_code)] // The slot array is shared between exactly two threads; see SAFETY notes below.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Returned by [`Producer::push`] when the ring has no free slot; carries the record back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full<T>(pub T);

#[repr(align(128))]
struct Cursor(AtomicU64);

struct Shared<T> {
    tail: Cursor,
    head: Cursor,
    mask: u64,
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
}

// SAFETY: a slot is written only by the single producer while it is outside [head, tail) and read only by
// the single consumer while it is inside; the Release/Acquire pair on the cursors orders those accesses.
// `T: Send` because records move from one thread to the other.
unsafe impl<T: Copy + Send> Sync for Shared<T> {}

/// The writing half. Exactly one exists per ring.
pub struct Producer<T> {
    shared: Arc<Shared<T>>,
    /// Published: the consumer may read below it.
    tail: u64,
    /// Written at `tail..tail + staged`, not yet published.
    staged: u64,
    head_cached: u64,
}

/// The reading half. Exactly one exists per ring.
pub struct Consumer<T> {
    shared: Arc<Shared<T>>,
    head: u64,
    tail_cached: u64,
}

/// Creates a ring with room for `capacity` records (rounded up to a power of two, at least 2).
///
/// # Panics
/// If `capacity` is 0 or above 2^32 (a configuration error caught at start-up).
pub fn ring<T: Copy + Send>(capacity: usize) -> (Producer<T>, Consumer<T>) {
    assert!(
        capacity > 0 && capacity <= 1 << 32,
        "ring capacity {capacity} out of range"
    );
    let capacity = capacity.next_power_of_two().max(2);
    let slots = (0..capacity)
        .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
        .collect();
    let shared = Arc::new(Shared {
        tail: Cursor(AtomicU64::new(0)),
        head: Cursor(AtomicU64::new(0)),
        mask: capacity as u64 - 1,
        slots,
    });
    (
        Producer {
            shared: Arc::clone(&shared),
            tail: 0,
            staged: 0,
            head_cached: 0,
        },
        Consumer {
            shared,
            head: 0,
            tail_cached: 0,
        },
    )
}

impl<T: Copy + Send> Producer<T> {
    /// Appends `record`, or returns it in [`Full`] when every slot is taken.
    #[inline]
    pub fn push(&mut self, record: T) -> Result<(), Full<T>> {
        if self.push_copy(&record) {
            Ok(())
        } else {
            Err(Full(record))
        }
    }

    /// Appends a copy of `*record` after everything staged, and publishes them all; returns false (and
    /// publishes nothing) when every slot is taken. The copy goes straight from `record` to the slot: a
    /// record taken out of a queue by value first is copied through the stack field by field and read
    /// back at once with wider loads, which stalls (store forwarding).
    #[inline]
    pub fn push_copy(&mut self, record: &T) -> bool {
        let Some(slot) = self.next_free_slot() else {
            return false;
        };
        // SAFETY: the slot is free (`next_free_slot`): the consumer does not read it until the Release
        // store below publishes it, and no other producer exists. `record` is a valid `T` and cannot
        // overlap a slot only this producer may write.
        unsafe { std::ptr::copy_nonoverlapping(record, slot, 1) };
        self.tail += self.staged + 1;
        self.staged = 0;
        self.shared.tail.0.store(self.tail, Ordering::Release);
        true
    }

    /// Writes `record` into the next free slot (after everything staged) without publishing it, and
    /// returns the slot so that the caller can finish the record in place; the record comes back in
    /// [`Full`] when every slot is taken. See "Staging" in the module header.
    #[inline]
    pub fn stage(&mut self, record: T) -> Result<&mut T, Full<T>> {
        let Some(slot) = self.next_free_slot() else {
            return Err(Full(record));
        };
        self.staged += 1;
        // SAFETY: the slot is free (`next_free_slot`) and stays unpublished until `publish` or a push,
        // both of which need `&mut self`, so not while the returned borrow lives; the consumer does not
        // read it before then, and no other producer exists. Writing a whole `T` initialises it.
        unsafe {
            slot.write(record);
            Ok(&mut *slot)
        }
    }

    /// Publishes every staged record, in the order staged.
    #[inline]
    pub fn publish(&mut self) {
        if self.staged > 0 {
            self.tail += self.staged;
            self.staged = 0;
            self.shared.tail.0.store(self.tail, Ordering::Release);
        }
    }

    /// Records staged and not yet published.
    #[inline]
    pub fn staged(&self) -> u64 {
        self.staged
    }

    /// The slot after the staged records, if the consumer has freed it.
    #[inline]
    fn next_free_slot(&mut self) -> Option<*mut T> {
        let capacity = self.shared.mask + 1;
        let at = self.tail + self.staged;
        if at - self.head_cached == capacity {
            self.head_cached = self.shared.head.0.load(Ordering::Acquire);
            if at - self.head_cached == capacity {
                return None;
            }
        }
        let slot = &self.shared.slots[(at & self.shared.mask) as usize];
        Some(slot.get().cast::<T>())
    }

    /// Free slots as last seen (a lower bound: the consumer may have freed more since); staged records
    /// take slots.
    pub fn free_slots(&self) -> usize {
        (self.shared.mask + 1 - (self.tail + self.staged - self.shared.head.0.load(Ordering::Acquire)))
            as usize
    }

    /// The ring's capacity in records.
    pub fn capacity(&self) -> usize {
        (self.shared.mask + 1) as usize
    }
}

impl<T: Copy + Send> Consumer<T> {
    /// Takes the oldest record, or `None` when the ring is empty.
    #[inline]
    pub fn pop(&mut self) -> Option<T> {
        if self.head == self.tail_cached {
            self.tail_cached = self.shared.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_cached {
                return None;
            }
        }
        let slot = &self.shared.slots[(self.head & self.shared.mask) as usize];
        // SAFETY: `head < tail` as published by the producer's Release store, which the Acquire load above
        // observed, so the slot holds an initialised record that the producer will not overwrite until the
        // Release store of `head` below.
        let record = unsafe { (*slot.get()).assume_init() };
        self.head += 1;
        self.shared.head.0.store(self.head, Ordering::Release);
        Some(record)
    }

    /// The `i`-th waiting record (0 = the oldest) without taking it, or `None` when fewer are waiting.
    /// With [`Consumer::skip`] it lets a stage work on records where they lie in the ring: a record copied
    /// out by value goes through the stack field by field, and the stage's first reads of that copy
    /// straddle the copy's stores, which stalls each of them (store forwarding fails).
    #[inline]
    pub fn peek_at(&self, i: u64) -> Option<&T> {
        let at = self.head + i;
        if at >= self.tail_cached && at >= self.shared.tail.0.load(Ordering::Acquire) {
            return None;
        }
        let slot = &self.shared.slots[(at & self.shared.mask) as usize];
        // SAFETY: `at` is below a `tail` the producer published with Release (observed with Acquire here
        // or before), so the slot is initialised; the producer does not rewrite it before `head` moves
        // past it, which needs `&mut self` (so not while the returned borrow lives).
        Some(unsafe { (*slot.get()).assume_init_ref() })
    }

    /// Discards the oldest record (after working on it through [`Consumer::peek_at`]) and hands its slot
    /// back to the producer. Does nothing when the ring is empty.
    #[inline]
    pub fn skip(&mut self) {
        if self.head == self.tail_cached {
            self.tail_cached = self.shared.tail.0.load(Ordering::Acquire);
            if self.head == self.tail_cached {
                return;
            }
        }
        self.head += 1;
        self.shared.head.0.store(self.head, Ordering::Release);
    }

    /// Takes up to `max` records in order, calling `f` with each where it lies in the ring, and publishes
    /// the consumed cursor once. Returns how many were taken: the bounded drain of an agent's `do_work`.
    #[inline]
    pub fn drain(&mut self, max: usize, mut f: impl FnMut(&T)) -> usize {
        let tail = self.shared.tail.0.load(Ordering::Acquire);
        self.tail_cached = tail;
        let available = (tail - self.head).min(max as u64);
        for i in 0..available {
            let slot = &self.shared.slots[((self.head + i) & self.shared.mask) as usize];
            // SAFETY: every index in [head, head + available) is below the observed `tail`, so initialised
            // and not rewritten before `head` is published below (after the last call of `f`).
            f(unsafe { (*slot.get()).assume_init_ref() });
        }
        self.head += available;
        if available > 0 {
            self.shared.head.0.store(self.head, Ordering::Release);
        }
        available as usize
    }

    /// Records waiting, as last published by the producer (for status and ring-depth gauges).
    pub fn len(&self) -> usize {
        (self.shared.tail.0.load(Ordering::Acquire) - self.head) as usize
    }

    /// True when no record is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_is_a_value_and_order_is_fifo() {
        let (mut tx, mut rx) = ring::<u32>(3);
        assert_eq!(tx.capacity(), 4);
        for i in 0..4 {
            tx.push(i).unwrap();
        }
        assert_eq!(tx.push(9), Err(Full(9)));
        assert_eq!(rx.len(), 4);
        assert_eq!(rx.peek_at(0), Some(&0), "peek_at shows the oldest");
        assert_eq!(rx.peek_at(0), Some(&0), "and does not take it");
        assert_eq!(rx.pop(), Some(0));
        assert_eq!(rx.peek_at(0), Some(&1));
        tx.push(4).unwrap();
        let mut got = Vec::new();
        assert_eq!(rx.drain(10, |r| got.push(*r)), 4);
        assert_eq!(got, vec![1, 2, 3, 4]);
        assert_eq!(rx.peek_at(0), None);
        assert_eq!(rx.pop(), None);
        assert!(rx.is_empty());
    }

    #[test]
    fn two_threads_see_every_record_once_in_order() {
        const COUNT: u64 = 200_000;
        let (mut tx, mut rx) = ring::<u64>(64);
        let producer = std::thread::spawn(move || {
            for i in 0..COUNT {
                let mut record = i;
                loop {
                    match tx.push(record) {
                        Ok(()) => break,
                        Err(Full(back)) => {
                            record = back;
                            std::thread::yield_now();
                        }
                    }
                }
            }
        });
        let mut expected = 0;
        while expected < COUNT {
            let taken = rx.drain(16, |r| {
                assert_eq!(*r, expected);
                expected += 1;
            });
            if taken == 0 {
                std::thread::yield_now();
            }
        }
        producer.join().unwrap();
        assert_eq!(rx.pop(), None);
    }

    #[test]
    fn peek_at_and_skip_walk_the_ring_in_place() {
        let (mut tx, mut rx) = ring::<u32>(4);
        assert_eq!(rx.peek_at(0), None);
        rx.skip();
        for i in 0..3 {
            tx.push(i).unwrap();
        }
        assert_eq!(rx.peek_at(0), Some(&0));
        assert_eq!(rx.peek_at(2), Some(&2));
        assert_eq!(rx.peek_at(3), None);
        rx.skip();
        assert_eq!(rx.peek_at(0), Some(&1));
        assert_eq!(rx.len(), 2);
        // The skipped slot is the producer's again: the ring takes a fourth and a fifth record.
        tx.push(3).unwrap();
        tx.push(4).unwrap();
        assert!(tx.push(5).is_err());
        for want in 1..5 {
            assert_eq!(rx.peek_at(0), Some(&want));
            rx.skip();
        }
        assert_eq!(rx.peek_at(0), None);
        assert!(rx.is_empty());
    }

    #[test]
    fn staged_records_stay_unseen_until_published_and_a_push_publishes_them_first() {
        let (mut tx, mut rx) = ring::<[u64; 2]>(4);
        tx.stage([1, 0]).expect("room")[1] = 10;
        tx.stage([2, 20]).expect("room");
        assert_eq!(tx.staged(), 2);
        assert_eq!((rx.len(), rx.peek_at(0)), (0, None), "nothing published yet");
        tx.publish();
        assert_eq!(tx.staged(), 0);
        assert_eq!(rx.pop(), Some([1, 10]), "finished in place");
        // Staged, then pushed: the push publishes both, staged first.
        tx.stage([3, 30]).expect("room");
        assert!(tx.push_copy(&[4, 40]));
        assert_eq!(tx.staged(), 0);
        // Capacity counts staged records: [2], [3], [4] wait, one slot left.
        assert_eq!(tx.free_slots(), 1);
        tx.stage([5, 50]).expect("the last slot");
        assert_eq!(tx.stage([6, 60]), Err(Full([6, 60])));
        assert!(!tx.push_copy(&[6, 60]), "a full ring publishes nothing");
        assert_eq!(rx.len(), 3);
        let seen: Vec<_> = std::iter::from_fn(|| rx.pop()).collect();
        assert_eq!(seen, vec![[2, 20], [3, 30], [4, 40]]);
        tx.publish();
        assert_eq!(rx.pop(), Some([5, 50]));
        assert_eq!(rx.pop(), None);
    }

    #[test]
    fn push_copy_fills_to_capacity_and_keeps_order() {
        let (mut tx, mut rx) = ring::<[u64; 3]>(2);
        assert!(tx.push_copy(&[1, 2, 3]));
        assert!(tx.push_copy(&[4, 5, 6]));
        assert!(!tx.push_copy(&[7, 8, 9]));
        assert_eq!(rx.pop(), Some([1, 2, 3]));
        assert!(tx.push_copy(&[7, 8, 9]));
        assert_eq!(rx.pop(), Some([4, 5, 6]));
        assert_eq!(rx.pop(), Some([7, 8, 9]));
        assert_eq!(rx.pop(), None);
    }
}
