//! The day's (login, token) table: open addressing, linear probing, fixed capacity, no deletion.
//!
//! Tokens are day-unique per login, so entries are only added during a day and the whole table is
//! cleared at start of day. An entry names the arena slot and generation of the order it created, or
//! [`DEAD`] (rejected, or never rested): the order is live only while that arena slot still holds that
//! generation, so an order leaving the book never writes to this (large, cold) table. Dead or live, a
//! known token makes a reused token ignored.
//!
//! # Locality
//! Clients number tokens sequentially (Nasdaq recommends increasing tokens), so the probe starts at a
//! group of 16 slots chosen by hashing the login and the token *without its last non-space character*,
//! offset by that character mod 16: consecutive tokens of a login fill neighbouring slots, and inserts
//! and cancels of recent orders hit warm cache lines and pages instead of one random miss each. Linear
//! probing keeps lookups correct for any token pattern.
//!
//! # Limits
//! At most `tokens_max` entries; the table has the next power of two ≥ 2 × `tokens_max` slots (at least
//! 16), so a probe sequence always ends at an empty slot. Hashing is a fixed multiply-xorshift:
//! deterministic, no seed.

use bourse_protocol::fields::Token;

/// Slot value meaning "no live order" (the token is dead).
pub(crate) const DEAD: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) login: u32,
    pub(crate) token: Token,
    /// Arena index of the order this token created, or [`DEAD`].
    pub(crate) order: u32,
    /// Generation of that arena slot when the order rested (live while it still matches).
    pub(crate) generation: u32,
    pub(crate) used: bool,
}

const EMPTY: Entry = Entry {
    login: 0,
    token: Token::BLANK,
    order: DEAD,
    generation: 0,
    used: false,
};
const GROUP: usize = 16;

pub(crate) struct TokenTable {
    pub(crate) slots: Vec<Entry>,
    pub(crate) len: u32,
    pub(crate) len_max: u32,
    mask: usize,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// Present.
    Found,
    /// Absent; this is the slot to insert into.
    Vacant(usize),
}

/// Probe start: a 16-slot group from (login, token without its last non-space byte), plus that byte.
fn probe_start(login: u32, token: &Token, mask: usize) -> usize {
    let mut key = token.0;
    let last = key.iter().rposition(|&b| b != b' ').unwrap_or(0);
    let offset = usize::from(key[last]) % GROUP;
    key[last] = last as u8; // keeps tokens of different lengths in different groups
    let group = hash(login, &key) as usize & mask & !(GROUP - 1);
    group + offset
}

pub(crate) fn hash(login: u32, b: &[u8; 14]) -> u64 {
    let a = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let c = u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], 0, 0]);
    let mut h = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ c.rotate_left(29) ^ u64::from(login);
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^= h >> 29;
    h
}

impl TokenTable {
    pub(crate) fn new(tokens_max: u32) -> Self {
        let slots_len = (tokens_max as usize * 2).next_power_of_two().max(GROUP);
        Self {
            slots: vec![EMPTY; slots_len],
            len: 0,
            len_max: tokens_max,
            mask: slots_len - 1,
        }
    }

    pub(crate) fn lookup(&self, login: u32, token: &Token) -> Lookup {
        let mut i = probe_start(login, token, self.mask);
        // Bounded: the table is at most half full, so an empty slot exists.
        for _ in 0..self.slots.len() {
            let e = &self.slots[i];
            if !e.used {
                return Lookup::Vacant(i);
            }
            if e.login == login && e.token == *token {
                return Lookup::Found;
            }
            i = (i + 1) & self.mask;
        }
        unreachable!(
            "token table has no empty slot: len {} of {}",
            self.len,
            self.slots.len()
        );
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len >= self.len_max
    }

    /// Inserts at a slot [`Lookup::Vacant`] returned. The caller checked [`Self::is_full`].
    pub(crate) fn insert(&mut self, slot: usize, login: u32, token: Token) {
        assert!(!self.slots[slot].used && self.len < self.len_max);
        self.slots[slot] = Entry {
            login,
            token,
            order: DEAD,
            generation: 0,
            used: true,
        };
        self.len += 1;
    }

    pub(crate) fn clear(&mut self) {
        self.slots.fill(EMPTY);
        self.len = 0;
    }
}
