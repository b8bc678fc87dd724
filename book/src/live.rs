//! The live-order index: (login, token) → arena index of every order resting on a book.
//!
//! Cancel, Replace and Modify name a live order by (login, token). The day's token table
//! ([`crate::tokens`]) must remember every token of the day and is large and cold; this index holds
//! only the resting orders, so it is small (2 × `orders_max` slots, rounded up to a power of two) and
//! stays in cache. An unknown token and a dead one are both "not here", which is all those commands need
//! (both are ignored).
//!
//! # Entries: 8 bytes
//! An entry is the 32-bit hash of (login, token) and the arena index; a hash match is confirmed against
//! the order in the arena (which the caller reads next anyway). Small entries keep the index in cache
//! even when `orders_max` is large, and backward-shift deletion reads the stored hash instead of
//! rehashing every entry it moves.
//!
//! Open addressing with linear probing and backward-shift deletion (no tombstones, so probe sequences
//! never degrade). Each resting order records its slot (`Order::live_slot`); a deletion that shifts an
//! entry updates that entry's order. The layout is an accelerator only: it is not part of the snapshot
//! (restore rebuilds it) and never shows in events.

use crate::tokens::TokenWords;

use crate::engine::{NIL, Order};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LiveEntry {
    /// Low 32 bits of the (login, token) hash: the home slot is `hash & mask`.
    hash: u32,
    /// Arena index, or [`NIL`] for an empty slot.
    order: u32,
}

const EMPTY: LiveEntry = LiveEntry { hash: 0, order: NIL };

pub(crate) struct LiveTable {
    slots: Vec<LiveEntry>,
    mask: usize,
    len: usize,
}

/// The entry hash: well mixed (the table is small and hot, so no locality grouping, which would only
/// lengthen probe runs here).
#[inline]
fn hash32(login: u32, token: TokenWords) -> u32 {
    crate::tokens::hash(login, token) as u32
}

impl LiveTable {
    pub(crate) fn new(orders_max: u32) -> Self {
        let len = (orders_max as usize * 2).next_power_of_two().max(16);
        assert!(len <= 1 << 32, "live index larger than its 32-bit hashes address");
        Self {
            slots: vec![EMPTY; len],
            mask: len - 1,
            len: 0,
        }
    }

    /// The arena index of the live order of (login, token).
    #[inline]
    pub(crate) fn get(&self, login: u32, token: TokenWords, orders: &[Order]) -> Option<u32> {
        let h = hash32(login, token);
        let mut i = h as usize & self.mask;
        // Bounded: at most `orders_max` entries in twice as many slots, so an empty slot exists.
        for _ in 0..self.slots.len() {
            let e = self.slots[i];
            if e.order == NIL {
                return None;
            }
            if e.hash == h {
                let o = &orders[e.order as usize];
                if o.login == login && o.token == token {
                    return Some(e.order);
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
        let h = hash32(o.login, o.token);
        let mut i = h as usize & self.mask;
        for _ in 0..self.slots.len() {
            let e = self.slots[i];
            if e.order == NIL {
                self.slots[i] = LiveEntry { hash: h, order };
                orders[order as usize].live_slot = i as u32;
                self.len += 1;
                return;
            }
            debug_assert!(
                !(e.hash == h
                    && orders[e.order as usize].login == orders[order as usize].login
                    && orders[e.order as usize].token == orders[order as usize].token),
                "a live token is inserted twice"
            );
            i = (i + 1) & self.mask;
        }
        unreachable!("live table full: more live orders than orders_max");
    }

    /// Removes the entry at `slot` (an order leaving the book), shifting later entries of its probe run
    /// back so that no tombstone is needed.
    #[inline]
    pub(crate) fn remove(&mut self, slot: u32, orders: &mut [Order]) {
        let mut hole = slot as usize;
        assert!(self.slots[hole].order != NIL, "removing an empty live slot");
        self.slots[hole] = EMPTY;
        self.len -= 1;
        let mut j = hole;
        for _ in 0..self.slots.len() {
            j = (j + 1) & self.mask;
            let e = self.slots[j];
            if e.order == NIL {
                return;
            }
            let k = e.hash as usize & self.mask;
            // The entry may move into the hole only if its home is not cyclically in (hole, j].
            let stays = if hole <= j {
                hole < k && k <= j
            } else {
                hole < k || k <= j
            };
            if !stays {
                self.slots[hole] = e;
                orders[e.order as usize].live_slot = hole as u32;
                self.slots[j] = EMPTY;
                hole = j;
            }
        }
    }

    /// The address of the home slot of (login, token): where [`LiveTable::get`] starts reading.
    #[inline]
    pub(crate) fn home_address(&self, login: u32, token: TokenWords) -> *const u8 {
        let i = hash32(login, token) as usize & self.mask;
        std::ptr::from_ref(&self.slots[i]).cast()
    }

    /// Number of entries.
    pub(crate) fn count(&self) -> usize {
        self.len
    }

    /// Checks that every entry is reachable from its home slot and points at a live order whose
    /// `live_slot` is that slot; O(table): for restore and tests.
    pub(crate) fn check(&self, orders: &[Order]) -> Result<(), String> {
        let mut n = 0;
        for (i, e) in self.slots.iter().enumerate().filter(|(_, e)| e.order != NIL) {
            n += 1;
            let o = orders.get(e.order as usize).ok_or("live entry past the arena")?;
            if !o.live || o.live_slot as usize != i || hash32(o.login, o.token) != e.hash {
                return Err(format!("live entry {i} does not match its order"));
            }
            if self.get(o.login, o.token, orders) != Some(e.order) {
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
        let orders_max = 8u32;
        let mut table = LiveTable::new(orders_max);
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
                present.remove(&index);
            }
            table.check(&orders).unwrap();
            for (index, (login, token)) in &present {
                assert_eq!(table.get(*login, *token, &orders), Some(*index));
            }
            assert_eq!(table.count(), present.len());
        }
    }
}
