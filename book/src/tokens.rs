//! The day's (login, token) set: every token a login used today, so that a reused token is ignored.
//!
//! # Design: built for how clients number tokens
//! Clients number their tokens in increasing order (Nasdaq recommends it; a sequential client's `T1`,
//! `T2`, … `T10` is increasing in the *shortlex* order used here: shorter first, then byte by byte).
//! So each login keeps:
//! - `highest`: its greatest token so far. A token above it is new **without probing anything**;
//! - an append-only **log** of the tokens that arrived in increasing order (sorted by construction),
//!   written sequentially into fixed-size chunks taken from one pool: a duplicate check of a token at
//!   or below `highest` (a resend, or an out-of-order client) is a binary search in that sorted run;
//! - tokens that arrive out of order go to a shared **exceptions** hash set (open addressing, linear
//!   probing, no deletion).
//!
//! Correct for any token order (a token is known iff it is in its login's log or in the exceptions;
//! property-tested against a `HashSet`); fast for the common one: an in-order Enter touches the login's
//! state and the tail of its log (warm, sequential memory) instead of a random slot of a large table.
//!
//! # Keys
//! A token's key is a `u128`: its 14 bytes big-endian in the low 112 bits, and the length without
//! trailing spaces in the top byte. Comparing keys compares tokens in shortlex order; the key is
//! injective (it holds every byte), so equal keys are equal tokens.
//!
//! # Limits
//! At most `tokens_max` tokens a day in all (then [`Insert::Full`]). The log pool has
//! `ceil(tokens_max / CHUNK_LEN) + logins` chunks of [`CHUNK_LEN`] keys (each login wastes at most one
//! partly filled chunk); the exceptions table has the next power of two ≥ 2 × `tokens_max` slots (at
//! least 16), so a probe sequence always ends at an empty slot even if every token came out of order.
//! Both are allocated and touched at start; nothing grows during the day. Each login's chunk directory
//! reserves room for the whole pool (`4 × chunks` bytes of address space per login, touched only as the
//! login's log grows): cheap for the tens of logins an exchange day has, to revisit (a shared directory)
//! if a configuration ever holds thousands. Hashing is a fixed multiply-xorshift: deterministic, no seed.

use bourse_protocol::fields::{Alpha, Token};

/// Keys per log chunk (16 KiB of keys).
pub(crate) const CHUNK_LEN: usize = 1024;

/// A token held as two 8-byte words (bytes 0..8 and 8..14, little-endian, zero-padded) inside the
/// engine's orders and takers: it is copied as one 16-byte move, where a bare 14-byte token is copied
/// as two overlapping 8-byte moves and a later full load of it cannot be store-forwarded (a stall on
/// every copy). Events still carry [`Token`] ([`TokenWords::token`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TokenWords(pub(crate) [u64; 2]);

impl TokenWords {
    /// The blank token.
    pub(crate) const BLANK: Self = Self::of(&Token::BLANK);

    /// The words of a token.
    #[inline]
    pub(crate) const fn of(t: &Token) -> Self {
        let b = t.0;
        Self([
            u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
            u64::from_le_bytes([b[8], b[9], b[10], b[11], b[12], b[13], 0, 0]),
        ])
    }

    /// The token.
    #[inline]
    pub(crate) fn token(self) -> Token {
        // Two 8-byte writes, the second overlapping the first by two bytes (bytes 6..14), instead of
        // 8 + six single bytes: events copy a token out of the arena on every cancel and fill.
        let [low, high] = self.0;
        let mut bytes = [0u8; 14];
        bytes[..8].copy_from_slice(&low.to_le_bytes());
        bytes[6..].copy_from_slice(&((low >> 48) | (high << 16)).to_le_bytes());
        Alpha(bytes)
    }
}

/// A token as an order-preserving (shortlex) integer key. Never 0.
#[inline]
pub(crate) fn key(token: &Token) -> u128 {
    key_of(TokenWords::of(token))
}

/// [`key`] of a token's words.
#[inline]
pub(crate) fn key_of(w: TokenWords) -> u128 {
    // Big-endian value of the 14 bytes: bytes 0..8 then 8..14.
    let bytes = u128::from(w.0[0].swap_bytes()) << 48 | u128::from(w.0[1].swap_bytes() >> 16);
    // Trailing spaces are the low zero bytes of `bytes ^ spaces`.
    const SPACES: u128 = 0x2020_2020_2020_2020_2020_2020_2020;
    let trailing = ((bytes ^ SPACES).trailing_zeros() / 8).min(14);
    bytes | u128::from(14 - trailing) << 120
}

/// The token of a key (inverse of [`key`]).
pub(crate) fn token_of(key: u128) -> Token {
    let be = key.to_be_bytes();
    let mut bytes = [0u8; 14];
    bytes.copy_from_slice(&be[2..]);
    Alpha(bytes)
}

/// Well-mixed hash of a login and a token (the live-order index's).
#[inline]
pub(crate) fn hash(login: u32, w: TokenWords) -> u64 {
    mix(w.0[0].wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ w.0[1].rotate_left(29) ^ u64::from(login))
}

#[inline]
fn mix(mut h: u64) -> u64 {
    h ^= h >> 32;
    h = h.wrapping_mul(0xD6E8_FEB8_6659_FD93);
    h ^= h >> 29;
    h
}

fn hash_key(login_ix: u32, key: u128) -> u64 {
    let (hi, lo) = ((key >> 64) as u64, key as u64);
    mix(lo.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ hi.rotate_left(29) ^ u64::from(login_ix))
}

/// What [`TokenTable::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The token was new and is now recorded.
    Added,
    /// The login already used this token today (nothing changed).
    Known,
    /// The token is new but the day's `tokens_max` is reached (nothing changed).
    Full,
}

/// One login's in-order tokens.
struct LoginLog {
    /// Greatest key recorded (in the log or the exceptions), 0 before the first.
    highest: u128,
    /// Pool chunk numbers, in order; capacity reserved at start for the whole pool.
    chunks: Vec<u32>,
    /// Keys in the log.
    len: usize,
    /// Pool index of the next key's place in the current chunk (`chunk_end` when the log is full or
    /// has no chunk yet): the in-order append writes there without reading the chunk directory.
    next: usize,
    /// Pool index one past the current chunk (0 before the first chunk).
    chunk_end: usize,
}

/// An exceptions slot: `login_ix` is `EMPTY_LOGIN` when free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Exception {
    key_hi: u64,
    key_lo: u64,
    login_ix: u32,
}

const EMPTY_LOGIN: u32 = u32::MAX;
const EXCEPTION_EMPTY: Exception = Exception {
    key_hi: 0,
    key_lo: 0,
    login_ix: EMPTY_LOGIN,
};

/// The day's token set; logins are named by their index in the engine's sorted login list.
pub(crate) struct TokenTable {
    logins: Vec<LoginLog>,
    pool: Vec<u128>,
    chunks_used: u32,
    chunks_max: u32,
    exceptions: Vec<Exception>,
    exceptions_len: u32,
    mask: usize,
    pub(crate) len: u32,
    pub(crate) len_max: u32,
}

impl TokenTable {
    /// A set for `logins` logins and at most `tokens_max` tokens a day.
    pub(crate) fn new(logins: usize, tokens_max: u32) -> Self {
        let chunks_max = (tokens_max as usize).div_ceil(CHUNK_LEN) + logins;
        let slots = (tokens_max as usize * 2).next_power_of_two().max(16);
        // Non-zero fill: the pages are written (touched) now, not during the day.
        let pool = vec![u128::MAX; chunks_max * CHUNK_LEN];
        Self {
            logins: (0..logins)
                .map(|_| LoginLog {
                    highest: 0,
                    chunks: Vec::with_capacity(chunks_max),
                    len: 0,
                    next: 0,
                    chunk_end: 0,
                })
                .collect(),
            pool,
            chunks_used: 0,
            chunks_max: u32::try_from(chunks_max).expect("token pool chunks fit in u32"),
            exceptions: vec![EXCEPTION_EMPTY; slots],
            exceptions_len: 0,
            mask: slots - 1,
            len: 0,
            len_max: tokens_max,
        }
    }

    /// Records (login, token) unless known or the day is full. `login_ix` < the logins given to `new`.
    ///
    /// Inlined: the common case (a token above the login's highest, appended to its log) is a compare
    /// and a store; everything else is in [`TokenTable::insert_not_above`], out of line.
    #[inline(always)]
    pub(crate) fn insert(&mut self, login_ix: usize, token: TokenWords) -> Insert {
        let k = key_of(token);
        if k > self.logins[login_ix].highest && self.len < self.len_max {
            // Fast path: above every token of this login, so new.
            self.append(login_ix, k);
            self.len += 1;
            Insert::Added
        } else {
            self.insert_slow(login_ix, k)
        }
    }

    /// [`TokenTable::insert`] of a key at or below the login's highest, or when the day is full.
    #[inline(never)]
    fn insert_slow(&mut self, login_ix: usize, k: u128) -> Insert {
        if k > self.logins[login_ix].highest {
            // Above every token of this login, so new; the day is full (checked by the caller).
            return Insert::Full;
        }
        if k == self.logins[login_ix].highest || self.in_log(login_ix, k) {
            return Insert::Known;
        }
        let slot = match self.probe(login_ix as u32, k) {
            Ok(_) => return Insert::Known,
            Err(slot) => slot,
        };
        if self.len >= self.len_max {
            return Insert::Full;
        }
        self.exceptions[slot] = Exception {
            key_hi: (k >> 64) as u64,
            key_lo: k as u64,
            login_ix: login_ix as u32,
        };
        self.exceptions_len += 1;
        self.len += 1;
        Insert::Added
    }

    /// Whether the login used the token today.
    pub(crate) fn contains(&self, login_ix: usize, token: &Token) -> bool {
        let k = key(token);
        let highest = self.logins[login_ix].highest;
        k <= highest && (k == highest || self.in_log(login_ix, k) || self.probe(login_ix as u32, k).is_ok())
    }

    /// Appends `k` (> the login's highest) to the login's log.
    #[inline(always)]
    fn append(&mut self, login_ix: usize, k: u128) {
        if self.logins[login_ix].next == self.logins[login_ix].chunk_end {
            self.add_chunk(login_ix);
        }
        let log = &mut self.logins[login_ix];
        debug_assert_eq!(
            log.next,
            log.chunks[log.len / CHUNK_LEN] as usize * CHUNK_LEN + log.len % CHUNK_LEN
        );
        self.pool[log.next] = k;
        log.next += 1;
        log.len += 1;
        log.highest = k;
    }

    /// Gives the login's full log one more chunk from the pool (once per [`CHUNK_LEN`] appends).
    #[cold]
    #[inline(never)]
    fn add_chunk(&mut self, login_ix: usize) {
        // The pool holds every login's chunks: at most tokens_max keys plus one partial chunk per
        // login, and `len < len_max` was checked.
        assert!(self.chunks_used < self.chunks_max, "token pool exhausted");
        let log = &mut self.logins[login_ix];
        log.chunks.push(self.chunks_used);
        log.next = self.chunks_used as usize * CHUNK_LEN;
        log.chunk_end = log.next + CHUNK_LEN;
        self.chunks_used += 1;
    }

    fn log_key(&self, log: &LoginLog, i: usize) -> u128 {
        self.pool[log.chunks[i / CHUNK_LEN] as usize * CHUNK_LEN + i % CHUNK_LEN]
    }

    /// Binary search of the login's sorted log.
    fn in_log(&self, login_ix: usize, k: u128) -> bool {
        let log = &self.logins[login_ix];
        let (mut lo, mut hi) = (0usize, log.len);
        // Bounded: the range halves every iteration.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let m = self.log_key(log, mid);
            if m == k {
                return true;
            }
            if m < k {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        false
    }

    /// `Ok(slot)` holding (login, k) in the exceptions, or `Err(empty slot)` to insert into.
    fn probe(&self, login_ix: u32, k: u128) -> Result<usize, usize> {
        let (hi, lo) = ((k >> 64) as u64, k as u64);
        let mut i = hash_key(login_ix, k) as usize & self.mask;
        // Bounded: at most tokens_max entries in ≥ 2 × tokens_max slots, so an empty slot exists.
        for _ in 0..self.exceptions.len() {
            let e = &self.exceptions[i];
            if e.login_ix == EMPTY_LOGIN {
                return Err(i);
            }
            if e.login_ix == login_ix && e.key_lo == lo && e.key_hi == hi {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
        unreachable!("token exceptions table has no empty slot");
    }

    /// Forgets every token (start of day). O(tables).
    pub(crate) fn clear(&mut self) {
        for log in &mut self.logins {
            log.highest = 0;
            log.chunks.clear();
            log.len = 0;
            log.next = 0;
            log.chunk_end = 0;
        }
        self.chunks_used = 0;
        if self.exceptions_len > 0 {
            self.exceptions.fill(EXCEPTION_EMPTY);
        }
        self.exceptions_len = 0;
        self.len = 0;
    }

    /// Number of logins.
    pub(crate) fn logins(&self) -> usize {
        self.logins.len()
    }

    /// The login's in-order tokens, increasing (for snapshots).
    pub(crate) fn log_tokens(&self, login_ix: usize) -> impl Iterator<Item = Token> + '_ {
        let log = &self.logins[login_ix];
        (0..log.len).map(move |i| token_of(self.log_key(log, i)))
    }

    /// Every out-of-order (login index, token), sorted (a canonical order, for snapshots).
    pub(crate) fn exception_tokens(&self) -> Vec<(u32, Token)> {
        let mut v: Vec<(u32, u128)> = self
            .exceptions
            .iter()
            .filter(|e| e.login_ix != EMPTY_LOGIN)
            .map(|e| (e.login_ix, u128::from(e.key_hi) << 64 | u128::from(e.key_lo)))
            .collect();
        v.sort_unstable();
        v.into_iter().map(|(l, k)| (l, token_of(k))).collect()
    }

    /// Restore: appends an in-order token to the login's log. `false` if it is not above the login's
    /// highest or the day is full.
    pub(crate) fn restore_log(&mut self, login_ix: usize, token: &Token) -> bool {
        let k = key(token);
        if login_ix >= self.logins.len() || k <= self.logins[login_ix].highest || self.len >= self.len_max {
            return false;
        }
        self.append(login_ix, k);
        self.len += 1;
        true
    }

    /// Restore: records an out-of-order token (after every log is restored). `false` if it is not below
    /// the login's highest, already known, or the day is full.
    pub(crate) fn restore_exception(&mut self, login_ix: usize, token: &Token) -> bool {
        if login_ix >= self.logins.len() || key(token) >= self.logins[login_ix].highest {
            return false;
        }
        self.insert(login_ix, TokenWords::of(token)) == Insert::Added
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{SplitMix64, token};
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn keys_order_sequential_tokens_and_round_trip() {
        let mut prev = 0u128;
        for id in [
            0u64,
            1,
            9,
            10,
            11,
            99,
            100,
            12_345,
            9_999_999,
            10_000_000,
            1 << 40,
        ] {
            let t = token(id);
            let k = key(&t);
            assert!(k > prev, "token {id} not above the previous one");
            assert_eq!(token_of(k), t);
            assert_eq!(TokenWords::of(&t).token(), t);
            prev = k;
        }
        assert!(key(&Alpha(*b"              ")) != 0);
        assert!(key(&Alpha(*b"B             ")) > key(&Alpha(*b"A             ")));
        assert!(key(&Alpha(*b"AA            ")) > key(&Alpha(*b"Z             ")));
        assert!(key(&Alpha(*b"A B           ")) != key(&Alpha(*b"A             ")));
    }

    /// Same answers as a `HashSet` for a token stream of the given shape.
    fn agrees_with_model(logins: usize, tokens_max: u32, stream: &[(usize, Token)]) {
        let mut table = TokenTable::new(logins, tokens_max);
        let mut model: HashSet<(usize, Token)> = HashSet::new();
        for (step, &(login, t)) in stream.iter().enumerate() {
            let expected = if model.contains(&(login, t)) {
                Insert::Known
            } else if model.len() >= tokens_max as usize {
                Insert::Full
            } else {
                Insert::Added
            };
            assert_eq!(
                table.insert(login, TokenWords::of(&t)),
                expected,
                "step {step}: login {login} token {t:?}"
            );
            if expected == Insert::Added {
                model.insert((login, t));
            }
            assert_eq!(table.len as usize, model.len());
            assert!(table.contains(login, &t) == (expected != Insert::Full));
        }
        for &(login, t) in stream {
            assert_eq!(table.contains(login, &t), model.contains(&(login, t)));
        }
        // The snapshot views hold exactly the set.
        let mut seen: HashSet<(usize, Token)> = HashSet::new();
        for l in 0..logins {
            seen.extend(table.log_tokens(l).map(|t| (l, t)));
        }
        seen.extend(table.exception_tokens().into_iter().map(|(l, t)| (l as usize, t)));
        assert_eq!(seen, model);
        table.clear();
        assert!(stream.iter().all(|(l, t)| !table.contains(*l, t)));
    }

    fn arb_token() -> impl Strategy<Value = Token> {
        // A small alphabet and short lengths, so collisions and resends are frequent.
        prop::collection::vec(prop::sample::select(b"AB1 \x00".to_vec()), 0..4).prop_map(|v| {
            let mut b = *b"              ";
            b[..v.len()].copy_from_slice(&v);
            Alpha(b)
        })
    }

    proptest! {
        /// Arbitrary tokens, logins and order (including exhaustion of `tokens_max`).
        #[test]
        fn any_order_agrees_with_a_hash_set(
            stream in prop::collection::vec((0usize..3, arb_token()), 0..300),
            tokens_max in 1u32..80,
        ) {
            agrees_with_model(3, tokens_max, &stream);
        }

        /// Mostly increasing sequential tokens with resends and out-of-order bursts, over chunk edges.
        #[test]
        fn sequential_with_resends_agrees_with_a_hash_set(seed in any::<u64>()) {
            let mut rng = SplitMix64(seed);
            let mut next = [0u64; 2];
            let mut stream = Vec::new();
            for _ in 0..(3 * CHUNK_LEN) {
                let login = rng.below(2) as usize;
                let id = match rng.below(10) {
                    0 => rng.below(next[login] + 1),       // resend (or an old gap)
                    1 => next[login] + 1 + rng.below(5),   // skip ahead, leaving gaps
                    _ => next[login],
                };
                next[login] = next[login].max(id + 1);
                stream.push((login, token(id)));
            }
            agrees_with_model(2, 2 * CHUNK_LEN as u32 + 100, &stream);
        }
    }
}
