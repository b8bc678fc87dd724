//! The live-order index: (login, token) → arena index of every order resting on a book.
//!
//! Cancel, Replace and Modify name a live order by (login, token). The day's token table
//! ([`crate::tokens`]) must remember every token of the day and is large and cold; this index holds
//! only the resting orders, so it is small (2 × `orders_max` slots, rounded up to a power of two) and
//! stays in cache. An unknown token and a dead one are both "not here", which is all those commands need
//! (both are ignored).
//!
//! # Groups of 8 slots, one cache line each
//! Slots come in groups of 8 (a 64-byte, line-aligned [`Group`]: eight 32-bit hashes, then eight arena
//! indices). An entry's home group is chosen by its (login, token) hash; it goes into the first empty
//! slot of its home group, or, when that group is full, of the next group that is not (cyclically). A
//! lookup compares the hashes of the home group's 8 slots at once (no loop on the data, so no branch
//! to mispredict), confirms a hash match against the order in the arena (which the caller reads next
//! anyway), and goes on to the next group only when an entry did pass the home group while it was full.
//!
//! Each group counts those entries (`passed`: entries stored beyond it whose home group is it or an
//! earlier group of the same run). A removal clears its slot and decrements the counts of the groups its
//! entry passed: no backward shift, no tombstone, no other entry moves, so nothing else is written (the
//! previous linear-probing index shifted later entries back on every removal and rewrote their orders'
//! slot numbers: a data-dependent loop on every order leaving the book). At most `orders_max` entries in
//! at least twice as many slots keep groups mostly a quarter full, so a group is almost never full.
//!
//! A stored hash always has its top bit set, so an empty slot (hash 0) never matches. Each resting order
//! records its slot (`Order::live_slot`), which never changes while it rests. The layout is an
//! accelerator only: it is not part of the snapshot (restore rebuilds it) and never shows in events.

use crate::tokens::TokenWords;

use crate::engine::{NIL, Order};

/// Slots per group (one cache line of 4-byte hashes and 4-byte arena indices).
pub(crate) const GROUP_SLOTS: usize = 8;

/// Set in every stored hash: hash 0 marks an empty slot.
const HASH_USED: u32 = 1 << 31;

/// Eight slots: their hashes (0 = empty) and arena indices (meaningful where the hash is not 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Group {
    hashes: [u32; GROUP_SLOTS],
    orders: [u32; GROUP_SLOTS],
}

const _: () = assert!(std::mem::size_of::<Group>() == 64);

const GROUP_EMPTY: Group = Group {
    hashes: [0; GROUP_SLOTS],
    orders: [NIL; GROUP_SLOTS],
};

impl Group {
    /// Bit `k` set where slot `k` holds hash `h` (`h` = 0: where slot `k` is empty). Branch-free.
    #[inline(always)]
    fn matching(&self, h: u32) -> u32 {
        let mut mask = 0u32;
        for (k, &x) in self.hashes.iter().enumerate() {
            mask |= u32::from(x == h) << k;
        }
        mask
    }
}

pub(crate) struct LiveTable {
    groups: Vec<Group>,
    /// Per group: entries stored beyond it that passed it because it was full when they were inserted.
    passed: Vec<u32>,
    /// `groups.len() - 1` (a power of two minus one).
    group_mask: usize,
    len: usize,
}

/// The entry hash (top bit set): well mixed (the table is small and hot, so no locality grouping,
/// which would only lengthen probe runs here).
#[inline]
fn hash32(login: u32, token: TokenWords) -> u32 {
    crate::tokens::hash(login, token) as u32 | HASH_USED
}

impl LiveTable {
    pub(crate) fn new(orders_max: u32) -> Self {
        let slots = (orders_max as usize * 2).next_power_of_two().max(2 * GROUP_SLOTS);
        assert!(
            slots <= 1 << 32,
            "live index larger than its 32-bit slot numbers address"
        );
        let groups = slots / GROUP_SLOTS;
        Self {
            groups: vec![GROUP_EMPTY; groups],
            passed: vec![0; groups],
            group_mask: groups - 1,
            len: 0,
        }
    }

    /// The home group of hash `h`.
    #[inline(always)]
    fn home(&self, h: u32) -> usize {
        h as usize & self.group_mask
    }

    /// The arena index of the live order of (login, token).
    #[inline]
    pub(crate) fn get(&self, login: u32, token: TokenWords, orders: &[Order]) -> Option<u32> {
        let h = hash32(login, token);
        let mut g = self.home(h);
        // Bounded: each group is visited at most once.
        for _ in 0..self.groups.len() {
            let group = &self.groups[g];
            let mut matches = group.matching(h);
            // Bounded: one bit cleared per iteration.
            while matches != 0 {
                let k = matches.trailing_zeros() as usize;
                let index = group.orders[k];
                let o = &orders[index as usize];
                if o.login == login && o.token == token {
                    return Some(index);
                }
                matches &= matches - 1;
            }
            if self.passed[g] == 0 {
                return None;
            }
            g = (g + 1) & self.group_mask;
        }
        None
    }

    /// Adds a resting order (its (login, token) is not present: tokens are day-unique).
    /// The order at `order` must already hold its login and token.
    #[inline]
    pub(crate) fn insert(&mut self, order: u32, orders: &mut [Order]) {
        let o = &orders[order as usize];
        let h = hash32(o.login, o.token);
        debug_assert!(
            self.get(o.login, o.token, orders).is_none(),
            "a live token is inserted twice"
        );
        let mut g = self.home(h);
        // Bounded: at most `orders_max` entries in twice as many slots, so a group with an empty slot
        // exists.
        for _ in 0..self.groups.len() {
            let group = &mut self.groups[g];
            let empty = group.matching(0);
            if empty != 0 {
                let k = empty.trailing_zeros() as usize;
                group.hashes[k] = h;
                group.orders[k] = order;
                orders[order as usize].live_slot = (g * GROUP_SLOTS + k) as u32;
                self.len += 1;
                return;
            }
            self.passed[g] += 1;
            g = (g + 1) & self.group_mask;
        }
        unreachable!("live table full: more live orders than orders_max");
    }

    /// Removes the entry at `slot` (an order leaving the book). Nothing else moves.
    #[inline]
    pub(crate) fn remove(&mut self, slot: u32) {
        let (at, k) = (slot as usize / GROUP_SLOTS, slot as usize % GROUP_SLOTS);
        let group = &mut self.groups[at];
        let h = group.hashes[k];
        assert!(h != 0, "removing an empty live slot");
        group.hashes[k] = 0;
        group.orders[k] = NIL;
        self.len -= 1;
        // The groups this entry passed (none unless its home group was full when it was inserted).
        let mut g = self.home(h);
        // Bounded: at most every other group.
        for _ in 0..self.groups.len() {
            if g == at {
                return;
            }
            self.passed[g] -= 1;
            g = (g + 1) & self.group_mask;
        }
        unreachable!("a live entry beyond every group");
    }

    /// The address of the home group of (login, token): the cache line [`LiveTable::get`] reads first.
    #[inline]
    pub(crate) fn home_address(&self, login: u32, token: TokenWords) -> *const u8 {
        let g = self.home(hash32(login, token));
        std::ptr::from_ref(&self.groups[g]).cast()
    }

    /// Number of entries.
    pub(crate) fn count(&self) -> usize {
        self.len
    }

    /// Checks that every entry is reachable from its home group and points at a live order whose
    /// `live_slot` is that slot, and that every group's `passed` count is what the entries say;
    /// O(table): for restore and tests.
    pub(crate) fn check(&self, orders: &[Order]) -> Result<(), String> {
        let mut n = 0;
        let mut passed = vec![0u32; self.groups.len()];
        for (g, group) in self.groups.iter().enumerate() {
            for k in 0..GROUP_SLOTS {
                let (h, index) = (group.hashes[k], group.orders[k]);
                if h == 0 {
                    if index != NIL {
                        return Err(format!("empty live slot {} names an order", g * GROUP_SLOTS + k));
                    }
                    continue;
                }
                n += 1;
                let slot = g * GROUP_SLOTS + k;
                let o = orders.get(index as usize).ok_or("live entry past the arena")?;
                if !o.live || o.live_slot as usize != slot || hash32(o.login, o.token) != h {
                    return Err(format!("live entry {slot} does not match its order"));
                }
                if self.get(o.login, o.token, orders) != Some(index) {
                    return Err(format!("live entry {slot} unreachable from its home group"));
                }
                let mut p = self.home(h);
                for _ in 0..self.groups.len() {
                    if p == g {
                        break;
                    }
                    passed[p] += 1;
                    p = (p + 1) & self.group_mask;
                }
            }
        }
        if n != self.len {
            return Err(format!("live index counts {} entries, holds {n}", self.len));
        }
        if passed != self.passed {
            return Err("live index pass counts differ from its entries".to_string());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::SplitMix64;

    /// Random inserts and removals in tiny tables (two and four groups: full groups, wrap-around),
    /// against a map; a token that was never inserted is never found.
    #[test]
    fn removals_keep_every_entry_reachable() {
        for orders_max in [8u32, 12] {
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
                    table.remove(slot);
                    present.remove(&index);
                }
                table.check(&orders).unwrap();
                for (index, (login, token)) in &present {
                    assert_eq!(table.get(*login, *token, &orders), Some(*index));
                }
                let unknown = TokenWords::of(&crate::workload::token(next_token));
                assert_eq!(table.get(1, unknown, &orders), None);
                assert_eq!(table.count(), present.len());
            }
        }
    }

    /// Ten entries with the same home group in a four-group table: two pass the full home group into
    /// the next one and stay reachable while entries of the home group leave; removing them clears
    /// the pass counts again.
    #[test]
    fn entries_passing_a_full_group_stay_reachable() {
        let orders_max = 12u32;
        let mut table = LiveTable::new(orders_max);
        assert_eq!(table.groups.len(), 4);
        let mut orders = vec![crate::engine::ORDER_VACANT; orders_max as usize];
        let same_home: Vec<TokenWords> = (0..)
            .map(|n| TokenWords::of(&crate::workload::token(n)))
            .filter(|t| table.home(hash32(1, *t)) == 3)
            .take(10)
            .collect();
        for (i, token) in same_home.iter().enumerate() {
            orders[i].live = true;
            orders[i].login = 1;
            orders[i].token = *token;
            table.insert(i as u32, &mut orders);
            table.check(&orders).unwrap();
        }
        // The last two wrapped around into group 0.
        assert_eq!(table.passed, [0, 0, 0, 2]);
        assert_eq!(orders[8].live_slot as usize / GROUP_SLOTS, 0);
        assert_eq!(orders[9].live_slot as usize / GROUP_SLOTS, 0);
        let remove = |table: &mut LiveTable, orders: &mut Vec<Order>, i: usize| {
            let slot = orders[i].live_slot;
            orders[i].live = false;
            table.remove(slot);
            table.check(orders).unwrap();
        };
        for i in 0..4 {
            remove(&mut table, &mut orders, i);
        }
        for (i, token) in same_home.iter().enumerate().skip(4) {
            assert_eq!(table.get(1, *token, &orders), Some(i as u32));
        }
        assert_eq!(table.passed, [0, 0, 0, 2]);
        remove(&mut table, &mut orders, 9);
        remove(&mut table, &mut orders, 8);
        assert_eq!(table.passed, [0; 4]);
        for (i, token) in same_home.iter().enumerate().skip(4).take(4) {
            assert_eq!(table.get(1, *token, &orders), Some(i as u32));
        }
        assert_eq!(table.get(1, same_home[9], &orders), None);
    }
}
