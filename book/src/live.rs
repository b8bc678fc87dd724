//! The live-order index: (login, token) → arena index of every order resting on a book.
//!
//! Cancel, Replace and Modify name a live order by (login, token). The day's token table
//! ([`crate::tokens`]) must remember every token of the day and is large and cold; this index holds
//! only the resting orders, so it is small (2 × `orders_max` slots, rounded up to a power of two) and
//! stays in cache. An unknown token and a dead one are both "not here", which is all those commands need
//! (both are ignored).
//!
//! # Entries: 4 bytes
//! An entry is the arena index + 1 in its low bits (as many as `orders_max` needs) and a tag (high
//! bits of the (login, token) hash) in the rest; a tag match is confirmed against the order in the
//! arena (which the caller reads next anyway). Half the bytes of the 8-byte entries before (hash and
//! index): the index was the largest source of first-level cache misses in the side-by-side profile
//! (64 KiB now for its 6,284 orders, 128 KiB before). Backward-shift deletion rehashes the (few)
//! entries after the hole from their orders instead of reading a stored hash.
//!
//! Open addressing with linear probing and backward-shift deletion (no tombstones, so probe sequences
//! never degrade). Each resting order records its slot (`Order::live_slot`); a deletion that shifts an
//! entry updates that entry's order. The layout is an accelerator only: it is not part of the snapshot
//! (restore rebuilds it) and never shows in events.

use crate::tokens::TokenWords;

use crate::engine::Order;

/// An empty slot.
const EMPTY: u32 = 0;

pub(crate) struct LiveTable {
    /// Per slot: [`EMPTY`], or the entry's tag (high bits) and its arena index + 1 (low `index_bits`).
    slots: Vec<u32>,
    mask: usize,
    /// Mask of an entry's low bits that hold the arena index + 1; the other bits are the tag.
    index_mask: u32,
    len: usize,
}

/// The (login, token) hash (well mixed: the table is small and hot, so no locality grouping, which
/// would only lengthen probe runs here). The home slot is its low bits, the tag its high bits.
#[inline]
fn hash(login: u32, token: TokenWords) -> u64 {
    crate::tokens::hash(login, token)
}

impl LiveTable {
    /// A table for `orders_max` live orders: 2 × `orders_max` slots rounded up to a power of two, of 4
    /// bytes each.
    pub(crate) fn new(orders_max: u32) -> Self {
        // Entries hold index + 1 <= orders_max; the bits above are the tag (>= 5 bits: orders_max is
        // at most ORDERS_MAX_LIMIT).
        Self::with_index_bits(orders_max, u32::BITS - orders_max.leading_zeros())
    }

    /// [`LiveTable::new`] with `index_bits` (>= the bits `orders_max` needs) for the arena index + 1;
    /// tests use many to leave a tag of one bit (every other probe a false tag match).
    fn with_index_bits(orders_max: u32, index_bits: u32) -> Self {
        let len = (orders_max as usize * 2).next_power_of_two().max(16);
        assert!(
            index_bits >= u32::BITS - orders_max.leading_zeros() && index_bits < u32::BITS,
            "arena indices need index_bits and leave at least one bit for the tag"
        );
        Self {
            slots: vec![EMPTY; len],
            mask: len - 1,
            index_mask: (1u32 << index_bits) - 1,
            len: 0,
        }
    }

    /// The tag bits of an entry for hash `h`.
    #[inline]
    fn tag(&self, h: u64) -> u32 {
        (h >> 32) as u32 & !self.index_mask
    }

    /// The arena index of the live order of (login, token).
    #[inline]
    pub(crate) fn get(&self, login: u32, token: TokenWords, orders: &[Order]) -> Option<u32> {
        let h = hash(login, token);
        let tag = self.tag(h);
        let mut i = h as usize & self.mask;
        // Bounded: at most `orders_max` entries in twice as many slots, so an empty slot exists.
        for _ in 0..self.slots.len() {
            let e = self.slots[i];
            if e == EMPTY {
                return None;
            }
            if e & !self.index_mask == tag {
                let index = (e & self.index_mask) - 1;
                let o = &orders[index as usize];
                if o.login == login && o.token == token {
                    return Some(index);
                }
            }
            i = (i + 1) & self.mask;
        }
        None
    }

    /// Adds a resting order (its (login, token) is not present: tokens are day-unique).
    /// The order at `order` must already hold its login and token.
    #[inline]
    pub(crate) fn insert(&mut self, order: u32, orders: &mut [Order]) {
        let o = &orders[order as usize];
        let h = hash(o.login, o.token);
        let entry = self.tag(h) | (order + 1);
        let mut i = h as usize & self.mask;
        for _ in 0..self.slots.len() {
            let e = self.slots[i];
            if e == EMPTY {
                self.slots[i] = entry;
                orders[order as usize].live_slot = i as u32;
                self.len += 1;
                return;
            }
            debug_assert!(e != entry, "a live order is inserted twice");
            i = (i + 1) & self.mask;
        }
        unreachable!("live table full: more live orders than orders_max");
    }

    /// Removes the entry at `slot` (an order leaving the book), shifting later entries of its probe run
    /// back so that no tombstone is needed. An entry's home slot is not stored: it is rehashed from its
    /// order (one probe run at most half full is short).
    #[inline]
    pub(crate) fn remove(&mut self, slot: u32, orders: &mut [Order]) {
        let mut hole = slot as usize;
        assert!(self.slots[hole] != EMPTY, "removing an empty live slot");
        self.slots[hole] = EMPTY;
        self.len -= 1;
        let mut j = hole;
        for _ in 0..self.slots.len() {
            j = (j + 1) & self.mask;
            let e = self.slots[j];
            if e == EMPTY {
                return;
            }
            let index = (e & self.index_mask) - 1;
            let o = &orders[index as usize];
            let k = hash(o.login, o.token) as usize & self.mask;
            // The entry may move into the hole only if its home is not cyclically in (hole, j].
            let stays = if hole <= j {
                hole < k && k <= j
            } else {
                hole < k || k <= j
            };
            if !stays {
                self.slots[hole] = e;
                orders[index as usize].live_slot = hole as u32;
                self.slots[j] = EMPTY;
                hole = j;
            }
        }
    }

    /// Number of entries.
    pub(crate) fn count(&self) -> usize {
        self.len
    }

    /// Checks that every entry is reachable from its home slot, carries its order's tag and points at a
    /// live order whose `live_slot` is that slot; O(table): for restore and tests.
    pub(crate) fn check(&self, orders: &[Order]) -> Result<(), String> {
        let mut n = 0;
        for (i, &e) in self.slots.iter().enumerate().filter(|(_, e)| **e != EMPTY) {
            n += 1;
            let index = (e & self.index_mask).wrapping_sub(1);
            let o = orders.get(index as usize).ok_or("live entry past the arena")?;
            if !o.live
                || o.live_slot as usize != i
                || self.tag(hash(o.login, o.token)) != e & !self.index_mask
            {
                return Err(format!("live entry {i} does not match its order"));
            }
            if self.get(o.login, o.token, orders) != Some(index) {
                return Err(format!("live entry {i} unreachable from its home slot"));
            }
        }
        if n != self.len {
            return Err(format!("live index counts {} entries, holds {n}", self.len));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::SplitMix64;

    /// Random inserts and removals in a tiny table (long probe runs, wrap-around), against a map.
    #[test]
    fn backward_shift_deletion_keeps_every_entry_reachable() {
        for index_bits in [4, 31] {
            shift_deletion_run(index_bits);
        }
    }

    /// One run of the test above: a 4-bit index (a 28-bit tag) or a 1-bit tag (false tag matches).
    fn shift_deletion_run(index_bits: u32) {
        let orders_max = 8u32;
        let mut table = LiveTable::with_index_bits(orders_max, index_bits);
        let mut orders = vec![crate::engine::ORDER_VACANT; orders_max as usize];
        let mut present: std::collections::BTreeMap<u32, (u32, TokenWords)> = Default::default();
        let mut rng = SplitMix64(7);
        let mut next_token = 0u64;
        for _ in 0..20_000 {
            let free: Vec<u32> = (0..orders_max).filter(|i| !present.contains_key(i)).collect();
            if !free.is_empty() && (present.is_empty() || rng.below(2) == 0) {
                let index = free[rng.below(free.len() as u64) as usize];
                let (login, token) = (
                    1 + rng.below(3) as u32,
                    TokenWords::of(&crate::workload::token(next_token)),
                );
                next_token += 1;
                orders[index as usize].live = true;
                orders[index as usize].login = login;
                orders[index as usize].token = token;
                table.insert(index, &mut orders);
                present.insert(index, (login, token));
            } else {
                let keys: Vec<u32> = present.keys().copied().collect();
                let index = keys[rng.below(keys.len() as u64) as usize];
                let slot = orders[index as usize].live_slot;
                orders[index as usize].live = false;
                table.remove(slot, &mut orders);
                let (login, token) = present.remove(&index).unwrap();
                assert_eq!(table.get(login, token, &orders), None);
            }
            table.check(&orders).unwrap();
            for (index, (login, token)) in &present {
                assert_eq!(table.get(*login, *token, &orders), Some(*index));
            }
            assert_eq!(table.count(), present.len());
        }
    }
}
