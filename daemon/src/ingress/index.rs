//! A per-login sparse index from session sequence numbers to journal sequence numbers, so a replay can
//! start reading the journal near the first message it needs instead of at the start of the day.
//!
//! Entries come from the live `ToSession::Ouch` records ingress sees (each carries both numbers), one per
//! `stride` session sequence numbers. The table has a fixed capacity ([`SPARSE_ENTRIES_MAX`], allocated
//! once): when it is full every other entry is dropped and the stride doubles, so a long day keeps an
//! index of the same size that is coarser. Messages written before this process started (a restart) are
//! not indexed: a lookup then answers `None` and the replay starts at the day's first journal record.
//!
//! # Invariant
//! Entries are increasing in both numbers (a login's stream is journaled in order), so the entry with the
//! largest session sequence at or below `n` is a journal position at or before message `n`.

/// Entries kept per login.
pub(crate) const SPARSE_ENTRIES_MAX: usize = 32;
/// Session sequence numbers between two entries at first.
pub(crate) const SPARSE_STRIDE_MIN: u64 = 64;

/// One login's index (see the module header).
#[derive(Clone, Debug)]
pub(crate) struct SparseIndex {
    /// `(session_seq, journal_seq)`, increasing.
    entries: Vec<(u64, u64)>,
    stride: u64,
}

impl SparseIndex {
    /// An empty index (allocates its fixed capacity).
    pub(crate) fn new() -> SparseIndex {
        SparseIndex {
            entries: Vec::with_capacity(SPARSE_ENTRIES_MAX),
            stride: SPARSE_STRIDE_MIN,
        }
    }

    /// Records that message `session_seq` of the login is journal record `journal_seq`.
    #[inline]
    pub(crate) fn note(&mut self, session_seq: u64, journal_seq: u64) {
        let due = match self.entries.last() {
            None => true,
            Some(&(last_session, last_journal)) => {
                session_seq >= last_session.saturating_add(self.stride) && journal_seq > last_journal
            }
        };
        if !due {
            return;
        }
        if self.entries.len() == SPARSE_ENTRIES_MAX {
            let mut kept = 0;
            for i in (0..SPARSE_ENTRIES_MAX).step_by(2) {
                self.entries[kept] = self.entries[i];
                kept += 1;
            }
            self.entries.truncate(kept);
            self.stride = self.stride.saturating_mul(2);
        }
        self.entries.push((session_seq, journal_seq));
    }

    /// A journal sequence at or before the record of message `session_seq`, if one is known.
    pub(crate) fn lookup(&self, session_seq: u64) -> Option<u64> {
        let at = self.entries.partition_point(|&(s, _)| s <= session_seq);
        at.checked_sub(1).map(|i| self.entries[i].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_answers_at_or_before_and_stays_bounded() {
        let mut index = SparseIndex::new();
        assert_eq!(index.lookup(5), None);
        // Message s is journal record 10 * s.
        for s in 1..=100_000u64 {
            index.note(s, 10 * s);
        }
        assert!(index.entries.len() <= SPARSE_ENTRIES_MAX);
        assert_eq!(index.entries.capacity(), SPARSE_ENTRIES_MAX);
        assert_eq!(index.lookup(0), None);
        assert_eq!(index.lookup(1), Some(10));
        for n in [2u64, 63, 64, 65, 1000, 54_321, 99_999, 100_000, 500_000] {
            let journal = index.lookup(n).unwrap();
            assert!(journal <= 10 * n, "{n}: {journal}");
            assert_eq!(journal % 10, 0);
        }
        // Near the end the entry is within two strides of the target.
        let last = index.lookup(100_000).unwrap();
        assert!(100_000 * 10 - last <= 2 * index.stride * 10);
    }
}
