//! The day's (login, token) table: open addressing, linear probing, fixed capacity, no deletion.
//!
//! Tokens are day-unique per login, so entries are only added during a day and the whole table is
//! cleared at start of day. Each entry says whether its token still names a live order (and which arena
//! slot) or is dead (filled, canceled, replaced or rejected): both make a reused token ignored.
//!
//! # Limits
//! At most `tokens_max` entries; the table has the next power of two ≥ 2 × `tokens_max` slots, so a probe
//! sequence always ends at an empty slot. Hashing is a fixed multiply-xorshift: deterministic, no seed.

use bourse_protocol::fields::Token;

/// Slot value meaning "no live order" (the token is dead).
pub(crate) const DEAD: u32 = u32::MAX;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) login: u32,
    pub(crate) token: Token,
    /// Arena index of the live order, or [`DEAD`].
    pub(crate) order: u32,
    pub(crate) used: bool,
}

const EMPTY: Entry = Entry {
    login: 0,
    token: Token::BLANK,
    order: DEAD,
    used: false,
};

pub(crate) struct TokenTable {
    pub(crate) slots: Vec<Entry>,
    pub(crate) len: u32,
    pub(crate) len_max: u32,
    mask: usize,
}

/// What a lookup found.
pub(crate) enum Lookup {
    /// Present, at this slot.
    Found(usize),
    /// Absent; this is the slot to insert into.
    Vacant(usize),
}

fn hash(login: u32, token: &Token) -> u64 {
    let b = &token.0;
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
        let slots_len = (tokens_max as usize * 2).next_power_of_two();
        Self {
            slots: vec![EMPTY; slots_len],
            len: 0,
            len_max: tokens_max,
            mask: slots_len - 1,
        }
    }

    pub(crate) fn lookup(&self, login: u32, token: &Token) -> Lookup {
        let mut i = hash(login, token) as usize & self.mask;
        // Bounded: the table is at most half full, so an empty slot exists.
        for _ in 0..self.slots.len() {
            let e = &self.slots[i];
            if !e.used {
                return Lookup::Vacant(i);
            }
            if e.login == login && e.token == *token {
                return Lookup::Found(i);
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
    pub(crate) fn insert(&mut self, slot: usize, login: u32, token: Token, order: u32) {
        assert!(!self.slots[slot].used && self.len < self.len_max);
        self.slots[slot] = Entry {
            login,
            token,
            order,
            used: true,
        };
        self.len += 1;
    }

    pub(crate) fn clear(&mut self) {
        self.slots.fill(EMPTY);
        self.len = 0;
    }
}
