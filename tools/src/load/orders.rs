//! A session's table of its own live orders, every operation O(1): find by token, draw the nth idle order,
//! mark one busy or idle again, remove one.
//!
//! The orders sit in slots of one vector (freed slots reused), a hash map from token to slot written only
//! when an order comes and goes, and a list of the idle orders' slots (no cancel or replace of ours on the
//! wire), so that "the nth idle order" is an index; each slot knows its place in that list, so marking an
//! order busy or idle touches no hash. The load generator's rooms can then be as deep as its in-flight
//! windows (thousands of orders per session) without the table costing more than the requests it tracks;
//! with a linear scan a room of 4,096 took the client from 3.2 M to 0.25 M requests/s, and an earlier
//! table that kept idle and busy orders in two regions of one vector, moving them by swaps, rewrote two
//! hash entries per move: a fifth of the client's core at saturation (docs/PERFORMANCE.md, "Session 19").

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
    /// While busy: the id of our request on the wire for it ([`super::window::Window`]).
    pub(super) request: u64,
}

/// `Slot::idle_at` of a busy order.
const BUSY: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct Slot {
    order: LiveOrder,
    /// Place in `LiveOrders::idle`, or [`BUSY`].
    idle_at: u32,
}

/// The live orders of one session (see the module header).
#[derive(Debug, Default)]
pub(super) struct LiveOrders {
    slots: Vec<Slot>,
    /// Slots not holding a live order.
    free: Vec<u32>,
    /// Slots of the idle orders.
    idle: Vec<u32>,
    by_token: HashMap<Token, u32, FxBuildHasher>,
}

impl LiveOrders {
    /// An empty table with room for `capacity` orders allocated up front.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            slots: Vec::with_capacity(capacity),
            free: Vec::with_capacity(capacity),
            idle: Vec::with_capacity(capacity),
            by_token: HashMap::with_capacity_and_hasher(capacity, FxBuildHasher),
        }
    }

    /// Orders known live.
    pub(super) fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Live orders no request of ours is working on.
    pub(super) fn idle(&self) -> usize {
        self.idle.len()
    }

    /// Adds an idle order. A token already in the table is replaced (tokens are day-unique, so only a
    /// confused server could send it twice).
    pub(super) fn push(&mut self, order: LiveOrder) {
        self.remove(order.token);
        let slot = Slot {
            order,
            idle_at: self.idle.len() as u32,
        };
        let at = match self.free.pop() {
            Some(at) => {
                self.slots[at as usize] = slot;
                at
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.idle.push(at);
        self.by_token.insert(order.token, at);
    }

    /// The order under `token`, if live.
    pub(super) fn get_mut(&mut self, token: Token) -> Option<&mut LiveOrder> {
        let at = *self.by_token.get(&token)?;
        Some(&mut self.slots[at as usize].order)
    }

    /// Whether a request of ours is working on the order under `token`, and that request's id (`None`: not
    /// in the table).
    pub(super) fn is_busy(&self, token: Token) -> Option<(bool, u64)> {
        let slot = &self.slots[*self.by_token.get(&token)? as usize];
        Some((slot.idle_at == BUSY, slot.order.request))
    }

    /// Marks the `nth` idle order busy with request `request` and returns it (`None` if there are not that
    /// many idle orders).
    pub(super) fn take_idle(&mut self, nth: usize, request: u64) -> Option<LiveOrder> {
        let at = *self.idle.get(nth)?;
        self.leave_idle(at);
        let order = &mut self.slots[at as usize].order;
        order.request = request;
        Some(*order)
    }

    /// Marks the order under `token` idle again (its cancel or replace failed); nothing if it is not live or
    /// already idle.
    pub(super) fn set_idle(&mut self, token: Token) {
        if let Some(&at) = self.by_token.get(&token)
            && self.slots[at as usize].idle_at == BUSY
        {
            self.slots[at as usize].idle_at = self.idle.len() as u32;
            self.idle.push(at);
        }
    }

    /// Removes the order under `token`; returns it and whether it was busy.
    pub(super) fn remove(&mut self, token: Token) -> Option<(LiveOrder, bool)> {
        let at = self.by_token.remove(&token)?;
        let busy = self.slots[at as usize].idle_at == BUSY;
        if !busy {
            self.leave_idle(at);
        }
        self.free.push(at);
        Some((self.slots[at as usize].order, busy))
    }

    /// Takes slot `at` (idle) out of the idle list.
    fn leave_idle(&mut self, at: u32) {
        let place = self.slots[at as usize].idle_at as usize;
        self.idle.swap_remove(place);
        if let Some(&moved) = self.idle.get(place) {
            self.slots[moved as usize].idle_at = place as u32;
        }
        self.slots[at as usize].idle_at = BUSY;
    }

    /// Checks the table's invariants (tests only).
    #[cfg(test)]
    fn check(&self) {
        assert_eq!(self.by_token.len() + self.free.len(), self.slots.len());
        for (&token, &at) in &self.by_token {
            assert_eq!(self.slots[at as usize].order.token, token);
            assert!(!self.free.contains(&at));
        }
        for (place, &at) in self.idle.iter().enumerate() {
            assert_eq!(self.slots[at as usize].idle_at as usize, place);
        }
        let idle = self
            .by_token
            .values()
            .filter(|&&at| self.slots[at as usize].idle_at != BUSY)
            .count();
        assert_eq!(idle, self.idle.len());
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
            request: 0,
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
        let a = t.take_idle(1, 11).unwrap();
        let b = t.take_idle(0, 12).unwrap();
        assert_ne!(a.token, b.token);
        assert_eq!((a.request, b.request), (11, 12));
        t.check();
        assert_eq!((t.len(), t.idle()), (5, 3));
        assert_eq!(t.is_busy(a.token), Some((true, 11)));
        assert_eq!(t.is_busy(token(99)), None);
        assert!(t.take_idle(3, 13).is_none());
        // The three idle ones are the ones not taken.
        let mut idle: Vec<_> = (0..3).map(|_| t.take_idle(0, 14).unwrap().open).collect();
        idle.sort_unstable();
        let mut expected: Vec<_> = (0..5).filter(|&n| n != a.open && n != b.open).collect();
        expected.sort_unstable();
        assert_eq!(idle, expected);
        t.set_idle(a.token);
        t.set_idle(a.token);
        t.check();
        assert_eq!(t.idle(), 1);
        assert_eq!(t.take_idle(0, 11), Some(a));
    }

    #[test]
    fn removal_keeps_the_regions_and_the_index() {
        let mut t = LiveOrders::with_capacity(0);
        for n in 0..8 {
            t.push(order(n));
        }
        let busy = t.take_idle(2, 7).unwrap();
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
                    let o = t.take_idle(nth, u64::from(step)).unwrap();
                    assert_eq!(o.request, u64::from(step));
                    let m = model.iter_mut().find(|(m, _)| m.token == o.token).unwrap();
                    assert!(!m.1, "took a busy order");
                    *m = (o, true);
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
