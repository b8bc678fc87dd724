//! The live-order index: (login, token) → arena index of every order resting on a book.
//!
//! Cancel, Replace and Modify name a live order by (login, token). The day's token table
//! ([`crate::tokens`]) must remember every token of the day and is large and cold; this index holds
//! only the resting orders, so it is small (2 × `orders_max` slots, rounded up to a power of two) and
//! stays in cache. An unknown token and a dead one are both "not here", which is all those commands need
//! (both are ignored).
//!
//! # Groups of 8 slots, one cache line each
//! Slots come in groups of 8 (a line-aligned [`Group`]: eight 1-byte tags in one word, eight arena
//! indices, and which slots hold an entry away from its home group). An entry's home group is chosen by
//! the low bits of its (login, token) hash and its tag is 7 other bits of it; it goes into the first
//! empty slot of its home group, or, when that group is full, of the next group that is not
//! (cyclically). A lookup compares the home group's 8 tags at once with word arithmetic (no loop on the
//! data, so no branch to mispredict; about 1 in 128 other entries passes for a match), confirms each
//! candidate against the order in the arena (which the caller reads next anyway), and goes on to the
//! next group only when an entry did pass the home group while it was full.
//!
//! Each group counts those entries (`passed`: entries stored beyond it whose home group is it or an
//! earlier group of the same run). A removal clears its slot and decrements the counts of the groups its
//! entry passed: no backward shift, no tombstone, no other entry moves, so nothing else is written (the
//! previous linear-probing index shifted later entries back on every removal and rewrote their orders'
//! slot numbers: a data-dependent loop on every order leaving the book). At most `orders_max` entries in
//! at least twice as many slots keep groups mostly a quarter full, so a group is almost never full.
//!
//! A stored tag always has its top bit set, so an empty slot (tag 0) never matches, and the empty slots
//! are exactly the tags without it. Each resting order records its slot (`Order::live_slot`), which never
//! changes while it rests. The layout is an accelerator only: it is not part of the snapshot (restore
//! rebuilds it) and never shows in events.

use crate::tokens::{TokenWords, hash};

use crate::engine::{NIL, Order};

/// Slots per group (one cache line: 8 one-byte tags, 8 four-byte arena indices).
pub(crate) const GROUP_SLOTS: usize = 8;

/// Each byte of a word 1, and each byte's top bit: the constants of the tag compare.
const BYTES_LOW: u64 = 0x0101_0101_0101_0101;
const BYTES_HIGH: u64 = 0x8080_8080_8080_8080;

/// Eight slots: their tags (byte `k` of `tags` is slot `k`'s: 0 = empty, else top bit set), arena
/// indices (meaningful where the tag is not 0), and the slots whose entry is not in its home group (bit
/// `k`): a removal reads back its entry's home group only for those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(crate) struct Group {
    tags: u64,
    orders: [u32; GROUP_SLOTS],
    away: u8,
}

const _: () = assert!(std::mem::size_of::<Group>() == 64);

const GROUP_EMPTY: Group = Group {
    tags: 0,
    orders: [NIL; GROUP_SLOTS],
    away: 0,
};

impl Group {
    /// The top bit of byte `k` set where slot `k` may hold tag `tag`: every slot that does, and rarely
    /// one that does not (the slot above a match, when its tag differs from `tag` in the lowest bit only:
    /// the subtraction's borrow), which the caller's confirmation rejects. Five word operations,
    /// branch-free.
    #[inline(always)]
    fn candidates(&self, tag: u8) -> u64 {
        let x = self.tags ^ (u64::from(tag) * BYTES_LOW);
        x.wrapping_sub(BYTES_LOW) & !x & BYTES_HIGH
    }

    /// The top bit of byte `k` set exactly where slot `k` is empty.
    #[inline(always)]
    fn empties(&self) -> u64 {
        !self.tags & BYTES_HIGH
    }

    /// Slot `k`'s tag.
    #[inline(always)]
    fn tag(&self, k: usize) -> u8 {
        (self.tags >> (8 * k)) as u8
    }
}

/// The slot of the lowest byte marked in `mask` (a `candidates` or `empties` mask).
#[inline(always)]
fn first_slot(mask: u64) -> usize {
    mask.trailing_zeros() as usize / 8
}

pub(crate) struct LiveTable {
    groups: Vec<Group>,
    /// Per group: entries stored beyond it that passed it because it was full when they were inserted.
    passed: Vec<u32>,
    /// `groups.len() - 1` (a power of two minus one).
    group_mask: usize,
    len: usize,
}

/// The tag of the entry hash `h` ([`hash`]: well mixed; the table is small and hot, so no locality
/// grouping, which would only lengthen probe runs here): its top 7 bits, with the top bit set (never 0,
/// the empty tag). Its low bits choose the home group.
#[inline(always)]
fn tag_of(h: u64) -> u8 {
    (h >> 57) as u8 | 0x80
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
    fn home(&self, h: u64) -> usize {
        h as usize & self.group_mask
    }

    /// The arena index of the live order of (login, token).
    #[inline]
    pub(crate) fn get(&self, login: u32, token: TokenWords, orders: &[Order]) -> Option<u32> {
        let h = hash(login, token);
        let tag = tag_of(h);
        let mut g = self.home(h);
        // Bounded: each group is visited at most once.
        for _ in 0..self.groups.len() {
            let group = &self.groups[g];
            let mut candidates = group.candidates(tag);
            // Bounded: one bit cleared per iteration.
            while candidates != 0 {
                let index = group.orders[first_slot(candidates)];
                let o = &orders[index as usize];
                if o.login == login && o.token == token {
                    return Some(index);
                }
                candidates &= candidates - 1;
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
        let h = hash(o.login, o.token);
        debug_assert!(
            self.get(o.login, o.token, orders).is_none(),
            "a live token is inserted twice"
        );
        let home = self.home(h);
        let mut g = home;
        // Bounded: at most `orders_max` entries in twice as many slots, so a group with an empty slot
        // exists.
        for _ in 0..self.groups.len() {
            let group = &mut self.groups[g];
            let empties = group.empties();
            if empties != 0 {
                let k = first_slot(empties);
                group.tags |= u64::from(tag_of(h)) << (8 * k);
                group.orders[k] = order;
                group.away |= u8::from(g != home) << k;
                orders[order as usize].live_slot = (g * GROUP_SLOTS + k) as u32;
                self.len += 1;
                return;
            }
            self.passed[g] += 1;
            g = (g + 1) & self.group_mask;
        }
        unreachable!("live table full: more live orders than orders_max");
    }

    /// Removes the entry at `slot`, which indexes `order` (an order leaving the book; its login and token
    /// give its home group when it was stored away from it). Nothing else moves.
    #[inline]
    pub(crate) fn remove(&mut self, slot: u32, order: &Order) {
        let (at, k) = (slot as usize / GROUP_SLOTS, slot as usize % GROUP_SLOTS);
        let group = &mut self.groups[at];
        assert!(group.tag(k) != 0, "removing an empty live slot");
        group.tags &= !(0xFF << (8 * k));
        group.orders[k] = NIL;
        let away = group.away & (1 << k) != 0;
        group.away &= !(1 << k);
        self.len -= 1;
        if !away {
            return;
        }
        // The groups this entry passed: from its home group up to the one holding it.
        let mut g = self.home(hash(order.login, order.token));
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
        let g = self.home(hash(login, token));
        std::ptr::from_ref(&self.groups[g]).cast()
    }

    /// The arena index in the first slot of (login, token)'s home group whose tag matches: the order
    /// [`LiveTable::get`] most likely confirms against (it reads the group, which should be cached by
    /// then: see [`LiveTable::home_address`]). A hint for a prefetch, never an answer: it may name
    /// another order, or nothing when the entry passed its home group.
    #[inline]
    pub(crate) fn likely_index(&self, login: u32, token: TokenWords) -> Option<u32> {
        let h = hash(login, token);
        let group = &self.groups[self.home(h)];
        let candidates = group.candidates(tag_of(h));
        (candidates != 0).then(|| group.orders[first_slot(candidates)])
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
                let (tag, index, away) = (group.tag(k), group.orders[k], group.away & (1 << k) != 0);
                let slot = g * GROUP_SLOTS + k;
                if tag == 0 {
                    if index != NIL || away {
                        return Err(format!("empty live slot {slot} names an order"));
                    }
                    continue;
                }
                n += 1;
                let o = orders.get(index as usize).ok_or("live entry past the arena")?;
                let h = hash(o.login, o.token);
                if !o.live || o.live_slot as usize != slot || tag_of(h) != tag {
                    return Err(format!("live entry {slot} does not match its order"));
                }
                if away != (self.home(h) != g) {
                    return Err(format!("live entry {slot} is marked {away} for away from home"));
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

    /// The word compare marks every slot holding the tag, for every subset of slots (all 256) with the
    /// other slots empty or holding other tags (one bit away, the borrow's neighbours, or any); it marks
    /// another slot only above a true match (the borrow), never when no slot holds the tag. The empty
    /// mask is exact.
    #[test]
    fn group_candidates_cover_the_slots_holding_the_tag() {
        let mut rng = SplitMix64(7);
        for subset in 0u32..256 {
            for round in 0..5 {
                let tag = tag_of(rng.next_u64());
                let mut group = GROUP_EMPTY;
                for k in 0..GROUP_SLOTS {
                    let t = if subset & (1 << k) != 0 {
                        tag
                    } else {
                        match round {
                            0 => 0,
                            1 => tag ^ (1 << rng.below(7)),
                            2 => 0x80 | tag.wrapping_add(1),
                            3 => 0x80 | tag.wrapping_sub(1),
                            _ => tag_of(rng.next_u64()),
                        }
                    };
                    let t = if t == tag && subset & (1 << k) == 0 {
                        tag ^ 1
                    } else {
                        t
                    };
                    group.tags |= u64::from(t) << (8 * k);
                }
                let mark = |mask: u64| {
                    (0..GROUP_SLOTS).fold(0u32, |m, k| m | u32::from(mask >> (8 * k + 7) & 1 == 1) << k)
                };
                let candidates = mark(group.candidates(tag));
                assert_eq!(candidates & subset, subset, "tags {:016x}", group.tags);
                let extra = candidates & !subset;
                if extra != 0 {
                    assert!(subset != 0 && extra.trailing_zeros() > subset.trailing_zeros());
                }
                let empties = (0..GROUP_SLOTS).fold(0u32, |m, k| m | u32::from(group.tag(k) == 0) << k);
                assert_eq!(mark(group.empties()), empties);
            }
        }
    }

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
                    table.remove(slot, &orders[index as usize]);
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

    /// Two entries whose hashes share the home group and the tag: each lookup finds its own order (the
    /// other is a candidate, rejected by its login and token), and removing either leaves the other.
    #[test]
    fn entries_sharing_a_tag_are_told_apart_by_their_orders() {
        let mut table = LiveTable::new(12);
        let tokens: Vec<TokenWords> = (0..4_000)
            .map(|n| TokenWords::of(&crate::workload::token(n)))
            .collect();
        let key = |t: &TokenWords| {
            let h = hash(1, *t);
            (table.home(h), tag_of(h))
        };
        let (a, b) = (0..tokens.len())
            .flat_map(|i| (i + 1..tokens.len()).map(move |j| (i, j)))
            .find(|&(i, j)| key(&tokens[i]) == key(&tokens[j]))
            .expect("two of 4,000 tokens share home and tag among 4 x 128");
        for first in [0, 1] {
            let mut orders = vec![crate::engine::ORDER_VACANT; 12];
            for (i, t) in [(0, tokens[a]), (1, tokens[b])] {
                orders[i].live = true;
                orders[i].login = 1;
                orders[i].token = t;
                table.insert(i as u32, &mut orders);
            }
            table.check(&orders).unwrap();
            assert_eq!(table.get(1, tokens[a], &orders), Some(0));
            assert_eq!(table.get(1, tokens[b], &orders), Some(1));
            let slot = orders[first].live_slot;
            orders[first].live = false;
            table.remove(slot, &orders[first]);
            table.check(&orders).unwrap();
            let (gone, kept) = if first == 0 { (a, b) } else { (b, a) };
            assert_eq!(table.get(1, tokens[gone], &orders), None);
            assert_eq!(table.get(1, tokens[kept], &orders), Some(1 - first as u32));
            let slot = orders[1 - first].live_slot;
            orders[1 - first].live = false;
            table.remove(slot, &orders[1 - first]);
            assert_eq!(table.count(), 0);
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
            .filter(|t| table.home(hash(1, *t)) == 3)
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
            table.remove(slot, &orders[i]);
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
