//! A session's table of its own live orders, every operation O(1): find by token, draw the nth idle order,
//! mark one busy or idle again, remove one.
//!
//! The orders sit in one vector, the idle ones (no cancel or replace of ours on the wire) in front and the
//! busy ones behind, so that "the nth idle order" is an index; a hash map from token to position follows
//! every move. The load generator's rooms can then be as deep as its in-flight windows (thousands of orders
//! per session) without the table costing more than the requests it tracks; with a linear scan a room of
//! 4,096 took the client from 3.2 M to 0.25 M requests/s.

use std::collections::HashMap;

use bourse_protocol::fields::Token;
use bourse_protocol::ouch::Side;
use rustc_hash::FxBuildHasher;

/// One resting order of the session's, as the session knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct LiveOrder {
    pub(super) token: Token,
    /// Index into the instrument list.
    pub(super) instrument: usize,
    pub(super) side: Side,
    /// Shares still open.
    pub(super) open: u32,
}

/// The live orders of one session (see the module header).
#[derive(Debug, Default)]
pub(super) struct LiveOrders {
    /// Idle orders in `..idle`, busy ones in `idle..`.
    orders: Vec<LiveOrder>,
    idle: usize,
    /// Position of each order in `orders`.
    by_token: HashMap<Token, usize, FxBuildHasher>,
}

impl LiveOrders {
    /// An empty table with room for `capacity` orders allocated up front.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            orders: Vec::with_capacity(capacity),
            idle: 0,
            by_token: HashMap::with_capacity_and_hasher(capacity, FxBuildHasher),
        }
    }

    /// Orders known live.
    pub(super) fn len(&self) -> usize {
        self.orders.len()
    }

    /// Live orders no request of ours is working on.
    pub(super) fn idle(&self) -> usize {
        self.idle
    }

    /// Adds an idle order. A token already in the table is replaced (tokens are day-unique, so only a
    /// confused server could send it twice).
    pub(super) fn push(&mut self, order: LiveOrder) {
        self.remove(order.token);
        let at = self.orders.len();
        self.orders.push(order);
        self.by_token.insert(order.token, at);
        self.swap(at, self.idle);
        self.idle += 1;
    }

    /// The order under `token`, if live.
    pub(super) fn get_mut(&mut self, token: Token) -> Option<&mut LiveOrder> {
        let at = *self.by_token.get(&token)?;
        Some(&mut self.orders[at])
    }

    /// Whether a request of ours is working on the order under `token` (`None`: not in the table).
    pub(super) fn is_busy(&self, token: Token) -> Option<bool> {
        self.by_token.get(&token).map(|&at| at >= self.idle)
    }

    /// Marks the `nth` idle order busy and returns it (`None` if there are not that many idle orders).
    pub(super) fn take_idle(&mut self, nth: usize) -> Option<LiveOrder> {
        if nth >= self.idle {
            return None;
        }
        let order = self.orders[nth];
        self.swap(nth, self.idle - 1);
        self.idle -= 1;
        Some(order)
    }

    /// Marks the order under `token` idle again (its cancel or replace failed); nothing if it is not live or
    /// already idle.
    pub(super) fn set_idle(&mut self, token: Token) {
        if let Some(&at) = self.by_token.get(&token)
            && at >= self.idle
        {
            self.swap(at, self.idle);
            self.idle += 1;
        }
    }

    /// Removes the order under `token`; returns it and whether it was busy.
    pub(super) fn remove(&mut self, token: Token) -> Option<(LiveOrder, bool)> {
        let mut at = *self.by_token.get(&token)?;
        let busy = at >= self.idle;
        if !busy {
            // Into the busy region first, so that the idle ones stay in front.
            self.swap(at, self.idle - 1);
            self.idle -= 1;
            at = self.idle;
        }
        let last = self.orders.len() - 1;
        self.swap(at, last);
        let order = self.orders.pop().expect("the table holds the order");
        self.by_token.remove(&token);
        Some((order, busy))
    }

    fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        self.orders.swap(a, b);
        self.by_token.insert(self.orders[a].token, a);
        self.by_token.insert(self.orders[b].token, b);
    }

    /// Checks the table's invariants (tests only).
    #[cfg(test)]
    fn check(&self) {
        assert!(self.idle <= self.orders.len());
        assert_eq!(self.by_token.len(), self.orders.len());
        for (at, order) in self.orders.iter().enumerate() {
            assert_eq!(self.by_token[&order.token], at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_protocol::fields::Alpha;

    fn token(n: u32) -> Token {
        let mut bytes = *b"T             ";
        bytes[1..9].copy_from_slice(format!("{n:08}").as_bytes());
        Alpha(bytes)
    }

    fn order(n: u32) -> LiveOrder {
        LiveOrder {
            token: token(n),
            instrument: 0,
            side: Side::Buy,
            open: n,
        }
    }

    #[test]
    fn idle_and_busy_orders_are_found_and_counted() {
        let mut t = LiveOrders::with_capacity(4);
        for n in 0..5 {
            t.push(order(n));
        }
        t.check();
        assert_eq!((t.len(), t.idle()), (5, 5));
        let a = t.take_idle(1).unwrap();
        let b = t.take_idle(0).unwrap();
        assert_ne!(a.token, b.token);
        t.check();
        assert_eq!((t.len(), t.idle()), (5, 3));
        assert_eq!(t.is_busy(a.token), Some(true));
        assert_eq!(t.is_busy(token(99)), None);
        assert!(t.take_idle(3).is_none());
        // The three idle ones are the ones not taken.
        let mut idle: Vec<_> = (0..3).map(|_| t.take_idle(0).unwrap().open).collect();
        idle.sort_unstable();
        let mut expected: Vec<_> = (0..5).filter(|&n| n != a.open && n != b.open).collect();
        expected.sort_unstable();
        assert_eq!(idle, expected);
        t.set_idle(a.token);
        t.set_idle(a.token);
        t.check();
        assert_eq!(t.idle(), 1);
        assert_eq!(t.take_idle(0), Some(a));
    }

    #[test]
    fn removal_keeps_the_regions_and_the_index() {
        let mut t = LiveOrders::with_capacity(0);
        for n in 0..8 {
            t.push(order(n));
        }
        let busy = t.take_idle(2).unwrap();
        assert_eq!(t.remove(busy.token), Some((busy, true)));
        assert_eq!(t.remove(token(5)), Some((order(5), false)));
        assert_eq!(t.remove(token(5)), None);
        t.check();
        assert_eq!((t.len(), t.idle()), (6, 6));
        t.get_mut(token(7)).unwrap().open = 70;
        assert_eq!(t.remove(token(7)).unwrap().0.open, 70);
        // A pushed token already present replaces the old entry.
        t.push(LiveOrder { open: 1, ..order(3) });
        t.check();
        assert_eq!(t.len(), 5);
        assert_eq!(t.get_mut(token(3)).unwrap().open, 1);
    }

    #[test]
    fn a_random_walk_agrees_with_a_plain_list() {
        // The plain list is the old implementation: a vector of (order, busy) scanned each time.
        let mut t = LiveOrders::with_capacity(16);
        let mut model: Vec<(LiveOrder, bool)> = Vec::new();
        let mut rng = crate::load::mix::Rng::new(7);
        for step in 0..20_000u32 {
            match rng.below(5) {
                0 | 1 => {
                    let o = order(step);
                    t.push(o);
                    model.push((o, false));
                }
                2 if t.idle() > 0 => {
                    let nth = rng.below(t.idle() as u64) as usize;
                    let o = t.take_idle(nth).unwrap();
                    let m = model.iter_mut().find(|(m, _)| m.token == o.token).unwrap();
                    assert!(!m.1, "took a busy order");
                    m.1 = true;
                }
                3 if !model.is_empty() => {
                    let (o, busy) = model.swap_remove(rng.below(model.len() as u64) as usize);
                    assert_eq!(t.remove(o.token), Some((o, busy)));
                }
                4 if !model.is_empty() => {
                    let at = rng.below(model.len() as u64) as usize;
                    let m = &mut model[at];
                    t.set_idle(m.0.token);
                    m.1 = false;
                }
                _ => {}
            }
            assert_eq!(t.len(), model.len());
            assert_eq!(t.idle(), model.iter().filter(|(_, busy)| !busy).count());
        }
        t.check();
    }
}
