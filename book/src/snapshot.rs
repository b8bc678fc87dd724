//! State snapshot: every book, the order arena, the token table, timers, the day's busts and counters to
//! bytes and back, plus a stable state hash.
//!
//! # Layout (little-endian, version 4)
//! `magic "BKSNAP" | version u16 | config fingerprint u64 | order_ref_next u64 | match_number_next u64 |
//! closed u8 | books | firms | orders | free list | tokens | expiries | day_first_match u64 | busted`
//! (version 3 ended with the ring of recent trades instead of the last two), each table as a `u32`
//! count then its entries (see the code for the exact fields; the arena is written raw, slot by slot, so
//! that restore reproduces the same slot assignment and a restored engine continues byte-identically).
//! The config fingerprint is FNV-1a over a canonical encoding of the [`EngineConfig`]; restoring under a
//! different configuration is refused.
//!
//! The state hash is FNV-1a 64 over the snapshot bytes: equal hashes mean equal state.

use bourse_protocol::fields::Alpha;

use crate::config::EngineConfig;
use crate::engine::{Engine, Expiry, FirmState, Level, NIL, Order, RestoreError};
use crate::record::Reader;
use crate::tokens::TokenWords;
use crate::types::{Lots, Ticks};

const MAGIC: &[u8; 6] = b"BKSNAP";
const VERSION: u16 = 4;

/// FNV-1a, 64 bit.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

struct Out<'a>(&'a mut Vec<u8>);

impl Out<'_> {
    fn b(&mut self, v: &[u8]) {
        self.0.extend_from_slice(v);
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u16(&mut self, v: u16) {
        self.b(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.b(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.b(&v.to_le_bytes());
    }
    fn len(&mut self, v: usize) {
        self.u32(u32::try_from(v).expect("tables are below u32::MAX"));
    }
}

/// Fingerprint of a configuration (FNV-1a over a canonical encoding).
pub fn config_fingerprint(config: &EngineConfig) -> u64 {
    let mut bytes = Vec::new();
    let mut o = Out(&mut bytes);
    o.u32(config.orders_max);
    o.u32(config.levels_max);
    o.u32(config.tokens_max);
    o.u32(config.busts_max);
    o.u64(config.order_ref_first);
    o.u64(config.match_number_first);
    o.len(config.instruments.len());
    for i in &config.instruments {
        o.b(&i.symbol.0);
        o.u16(i.locate);
        o.u32(i.tick_size);
        o.u32(i.lot_size);
        o.u32(i.collar_bps);
        o.u32(i.reference_price);
        o.u32(i.shares_max);
        o.u64(i.notional_max);
    }
    o.len(config.firms.len());
    for f in &config.firms {
        o.b(&f.firm.0);
        o.u32(f.open_orders_max);
        o.u8(f.stp as u8);
    }
    o.len(config.logins.len());
    for l in &config.logins {
        o.u32(l.login);
        o.len(l.firms.len());
        for f in &l.firms {
            o.b(&f.0);
        }
        o.b(&l.default_firm.0);
    }
    fnv1a64(&bytes)
}

impl Engine {
    /// Appends a snapshot of the whole engine state to `out` (allocates: not for the hot path).
    pub fn snapshot(&self, out: &mut Vec<u8>) {
        let mut o = Out(out);
        o.b(MAGIC);
        o.u16(VERSION);
        o.u64(config_fingerprint(&self.config));
        o.u64(self.order_ref_next);
        o.u64(self.match_number_next);
        o.u8(u8::from(self.closed));
        for book in &self.books {
            o.u8(u8::from(book.halted));
            o.u32(book.last_trade_price);
            for levels in [&book.bids, &book.asks] {
                o.len(levels.len());
                for l in levels.iter() {
                    o.u32(l.price.0);
                    o.u64(l.open);
                    o.u32(l.head);
                    o.u32(l.tail);
                }
            }
        }
        for f in &self.firms {
            o.u8(u8::from(f.killed));
            o.u32(f.open_orders);
        }
        let expire_ns = self.order_expiries();
        o.len(self.orders.len());
        for (x, &expire_ns) in self.orders.iter().zip(&expire_ns) {
            o.u64(x.order_ref);
            o.u64(expire_ns);
            o.u32(x.login);
            o.u32(x.price.0);
            o.u32(x.open.0);
            o.u32(x.prev);
            o.u32(x.next);
            o.u32(x.generation);
            o.b(&x.token.token().0);
            o.u16(x.firm);
            o.u16(x.instrument);
            o.u8(x.side_letter);
            o.u8(x.display);
            o.u8(x.capacity);
            o.u8(x.cross_type);
            o.u8(u8::from(x.live));
        }
        o.len(self.free.len());
        for &i in &self.free {
            o.u32(i);
        }
        // Tokens in a canonical order: each login's in-order log (increasing), then the out-of-order
        // exceptions sorted by (login index, key), so equal sets of the same history give equal bytes.
        o.len(self.tokens.len as usize);
        for login_ix in 0..self.tokens.logins() {
            let log: Vec<_> = self.tokens.log_tokens(login_ix).collect();
            o.len(log.len());
            for t in &log {
                o.b(&t.0);
            }
        }
        let exceptions = self.tokens.exception_tokens();
        o.len(exceptions.len());
        for (login_ix, t) in &exceptions {
            o.u32(*login_ix);
            o.b(&t.0);
        }
        o.len(self.expiries.len());
        for e in &self.expiries {
            o.u64(e.expire_ns);
            o.u64(e.order_ref);
            o.u32(e.index);
            o.u32(e.generation);
        }
        o.u64(self.day_first_match);
        o.len(self.busted.len());
        for &m in &self.busted {
            o.u64(m);
        }
    }

    /// Each arena slot's expiry time, which the order itself does not keep: a live order's is its entry in
    /// the expiry heap (the one with its generation; stale entries, of orders gone since, are skipped), 0
    /// for a day order or a free slot.
    pub(crate) fn order_expiries(&self) -> Vec<u64> {
        let mut expire_ns = vec![0u64; self.orders.len()];
        for e in &self.expiries {
            let x = &self.orders[e.index as usize];
            if x.live && x.generation == e.generation {
                expire_ns[e.index as usize] = e.expire_ns;
            }
        }
        expire_ns
    }

    /// A stable 64-bit hash of the whole state (FNV-1a over [`Engine::snapshot`]).
    pub fn state_hash(&self) -> u64 {
        let mut bytes = Vec::new();
        self.snapshot(&mut bytes);
        fnv1a64(&bytes)
    }

    /// Rebuilds an engine from `config` and a snapshot taken under the same configuration.
    ///
    /// # Errors
    /// [`RestoreError`] for malformed bytes, another version or configuration, or out-of-range values;
    /// a configuration error is reported as `RestoreError::Range("config")`.
    pub fn restore(config: EngineConfig, bytes: &[u8]) -> Result<Engine, RestoreError> {
        let mut engine = Engine::new(config).map_err(|_| RestoreError::Range("config"))?;
        let mut r = Reader::new(bytes);
        let magic: [u8; 6] = r.array()?;
        if &magic != MAGIC || r.u16()? != VERSION {
            return Err(RestoreError::Version);
        }
        let expected = config_fingerprint(&engine.config);
        let found = r.u64()?;
        if found != expected {
            return Err(RestoreError::Config { expected, found });
        }
        engine.order_ref_next = r.u64()?;
        engine.match_number_next = r.u64()?;
        engine.closed = r.bool("closed")?;
        let orders_max = engine.config.orders_max as usize;
        let levels_max = engine.config.levels_max as usize;
        let len = |r: &mut Reader<'_>, max: usize, what: &'static str| -> Result<usize, RestoreError> {
            let n = r.u32()? as usize;
            if n > max {
                Err(RestoreError::Range(what))
            } else {
                Ok(n)
            }
        };
        for i in 0..engine.books.len() {
            let halted = r.bool("halted")?;
            let last_trade_price = r.u32()?;
            let mut sides = [Vec::new(), Vec::new()];
            for levels in &mut sides {
                let n = len(&mut r, levels_max, "levels")?;
                *levels = Vec::with_capacity(levels_max);
                for _ in 0..n {
                    levels.push(Level {
                        price: Ticks(r.u32()?),
                        open: r.u64()?,
                        head: r.u32()?,
                        tail: r.u32()?,
                    });
                }
            }
            let [bids, asks] = sides;
            let book = &mut engine.books[i];
            (book.bids, book.asks) = (bids, asks);
            book.halted = halted;
            book.last_trade_price = last_trade_price;
            book.reindex();
        }
        for f in 0..engine.firms.len() {
            engine.firms[f] = FirmState {
                killed: r.bool("killed")?,
                open_orders: r.u32()?,
            };
        }
        let n = len(&mut r, orders_max, "orders")?;
        for _ in 0..n {
            let order_ref = r.u64()?;
            // The expiry time: not kept in the order; the expiry heap, restored below, holds it.
            r.u64()?;
            let o = Order {
                order_ref,
                login: r.u32()?,
                live_slot: NIL,
                price: Ticks(r.u32()?),
                open: Lots(r.u32()?),
                prev: r.u32()?,
                next: r.u32()?,
                generation: r.u32()?,
                token: TokenWords::of(&Alpha(r.array()?)),
                firm: r.u16()?,
                instrument: r.u16()?,
                // Derived below from `login` (not in the snapshot).
                login_ix: 0,
                side_letter: r.u8()?,
                display: r.u8()?,
                capacity: r.u8()?,
                cross_type: r.u8()?,
                live: r.bool("live")?,
            };
            let index_ok = |i: u32| i == NIL || (i as usize) < n;
            if o.live
                && (crate::Side::from_letter(o.side_letter).is_none()
                    || o.firm as usize >= engine.firms.len()
                    || o.instrument as usize >= engine.books.len()
                    || !index_ok(o.prev)
                    || !index_ok(o.next))
            {
                return Err(RestoreError::Range("order"));
            }
            engine.orders.push(o);
        }
        for book in &engine.books {
            for l in book.bids.iter().chain(book.asks.iter()) {
                if l.head as usize >= n || l.tail as usize >= n {
                    return Err(RestoreError::Range("level"));
                }
            }
        }
        let n_free = len(&mut r, orders_max, "free")?;
        for _ in 0..n_free {
            let i = r.u32()?;
            if i as usize >= n || engine.orders[i as usize].live {
                return Err(RestoreError::Range("free"));
            }
            engine.free.push(i);
        }
        let tokens_max = engine.config.tokens_max as usize;
        let n_tokens = len(&mut r, tokens_max, "tokens")?;
        for login_ix in 0..engine.tokens.logins() {
            let n_log = len(&mut r, tokens_max, "token log")?;
            for _ in 0..n_log {
                if !engine.tokens.restore_log(login_ix, &Alpha(r.array()?)) {
                    return Err(RestoreError::Range("token log"));
                }
            }
        }
        let n_exceptions = len(&mut r, tokens_max, "token exceptions")?;
        for _ in 0..n_exceptions {
            let login_ix = r.u32()? as usize;
            if !engine.tokens.restore_exception(login_ix, &Alpha(r.array()?)) {
                return Err(RestoreError::Range("token exception"));
            }
        }
        if engine.tokens.len as usize != n_tokens {
            return Err(RestoreError::Range("token count"));
        }
        let n_expiries = len(&mut r, orders_max, "expiries")?;
        for _ in 0..n_expiries {
            let e = Expiry {
                expire_ns: r.u64()?,
                order_ref: r.u64()?,
                index: r.u32()?,
                generation: r.u32()?,
            };
            if e.index as usize >= n {
                return Err(RestoreError::Range("expiry"));
            }
            engine.expiries.push(e);
        }
        engine.day_first_match = r.u64()?;
        if engine.day_first_match < engine.config.match_number_first
            || engine.day_first_match > engine.match_number_next
        {
            return Err(RestoreError::Range("day's first match number"));
        }
        let n_busted = len(&mut r, engine.config.busts_max as usize, "busts")?;
        for _ in 0..n_busted {
            let m = r.u64()?;
            // Ascending, of the day, and already traded.
            if engine.busted.last().is_some_and(|&last| last >= m)
                || m < engine.day_first_match
                || m >= engine.match_number_next
            {
                return Err(RestoreError::Range("busted match number"));
            }
            engine.busted.push(m);
        }
        if r.pos != bytes.len() {
            return Err(RestoreError::TrailingBytes(bytes.len() - r.pos));
        }
        // Every live order's token was used today by its login; then the structural invariants.
        for o in engine.orders.iter().filter(|o| o.live) {
            let known = engine
                .login_index(o.login)
                .is_some_and(|login_ix| engine.tokens.contains(login_ix, &o.token.token()));
            if !known {
                return Err(RestoreError::Range("order token"));
            }
        }
        if engine.orders.iter().filter(|o| o.live).count() != engine.order_count() {
            return Err(RestoreError::Range("free list"));
        }
        // Rebuild the live-order index and the per-login resting counts (not in the snapshot: they are
        // accelerators only; every live order's login is known, checked above).
        for i in 0..engine.orders.len() {
            let o = engine.orders[i];
            if o.live {
                let login_ix = engine.login_index(o.login).expect("checked above");
                engine.orders[i].login_ix = login_ix as u16;
                engine.login_resting[login_ix] += 1;
                if engine.live.get(o.login, o.token, &engine.orders).is_some() {
                    return Err(RestoreError::Range("duplicate live token"));
                }
                engine.live.insert(i as u32, &mut engine.orders);
            }
        }
        engine
            .check_invariants()
            .map_err(|_| RestoreError::Range("invariants"))?;
        engine
            .live
            .check(&engine.orders)
            .map_err(|_| RestoreError::Range("live index"))?;
        Ok(engine)
    }
}
