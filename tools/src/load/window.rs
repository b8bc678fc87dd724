//! A session's in-flight window: the requests sent and not yet answered, in send order, each under an id
//! that grows by one per request.
//!
//! Answers come back in the order the exchange applied the requests, so the one an ack matches is almost
//! always at the front, and [`Window::take_first`] walks from there. An order that dies while a cancel or
//! replace of ours is on the wire (executed in full, canceled by the exchange) needs that request found
//! without a walk: its id is kept with the order ([`super::orders::LiveOrder::request`]) and
//! [`Window::take_id`] finds it at its distance from the front's id (by binary search after a
//! compaction). A request taken from anywhere but the front is marked
//! taken in place (removing it would move up to half the window), and taken ones are dropped once they
//! reach the front, or all at once when they outnumber the live ones in a window grown to twice its
//! capacity.
//!
//! Measured at saturation (docs/PERFORMANCE.md, "Session 19"): with a walk of the whole window (4,096
//! requests per session in the throughput steps) for every busy order that died, the load generator
//! spent about a fifth of its core there, and against `boursed` (whose fills kill orders, which the echo
//! never does) the client, not the server, set the achieved rate.

use std::collections::VecDeque;

use bourse_protocol::fields::Token;

/// What a request was, for matching its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Quote = 0,
    Cancel = 1,
    Replace = 2,
    Aggressive = 3,
    Market = 4,
}

/// One request on the wire.
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub(super) kind: Kind,
    /// The token the ack comes under (the replacement token for a Replace).
    pub(super) token: Token,
    /// The existing order of a Cancel or Replace.
    pub(super) target: Token,
    pub(super) scheduled_ns: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    id: u64,
    /// `None` once taken from behind the front.
    pending: Option<Pending>,
}

/// The requests in flight (see the module header).
#[derive(Debug)]
pub(super) struct Window {
    entries: VecDeque<Entry>,
    /// Entries not taken.
    live: usize,
    next_id: u64,
    capacity: usize,
}

impl Window {
    /// An empty window with room for `capacity` requests allocated up front.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            entries: VecDeque::with_capacity(capacity),
            live: 0,
            next_id: 0,
            capacity,
        }
    }

    /// Requests in flight.
    pub(super) fn len(&self) -> usize {
        self.live
    }

    /// Whether nothing is in flight.
    pub(super) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The id the next request pushed gets.
    pub(super) fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Adds a request; returns its id.
    pub(super) fn push(&mut self, pending: Pending) -> u64 {
        if self.entries.len() >= 2 * self.capacity.max(64) && self.entries.len() - self.live > self.live {
            self.entries.retain(|e| e.pending.is_some());
        }
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Entry {
            id,
            pending: Some(pending),
        });
        self.live += 1;
        id
    }

    /// Takes the first request (from the front) that `matches`.
    pub(super) fn take_first(&mut self, matches: impl Fn(&Pending) -> bool) -> Option<Pending> {
        let at = self
            .entries
            .iter()
            .position(|e| e.pending.as_ref().is_some_and(&matches))?;
        self.take_at(at)
    }

    /// Takes the request with id `id` if it is still in flight and `matches`.
    pub(super) fn take_id(&mut self, id: u64, matches: impl Fn(&Pending) -> bool) -> Option<Pending> {
        // Entries leave only from the front, except in a compaction: the place is the distance from the
        // front's id, and a binary search after a compaction.
        let front = self.entries.front()?.id;
        let guess = usize::try_from(id.checked_sub(front)?).ok()?;
        let at = match self.entries.get(guess) {
            Some(e) if e.id == id => guess,
            _ => self.entries.binary_search_by_key(&id, |e| e.id).ok()?,
        };
        if !self.entries[at].pending.as_ref().is_some_and(matches) {
            return None;
        }
        self.take_at(at)
    }

    fn take_at(&mut self, at: usize) -> Option<Pending> {
        let taken = self.entries[at].pending.take();
        self.live -= 1;
        while self.entries.front().is_some_and(|e| e.pending.is_none()) {
            self.entries.pop_front();
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_protocol::fields::Alpha;

    fn token(n: u8) -> Token {
        let mut bytes = [b' '; 14];
        bytes[0] = n;
        Alpha(bytes)
    }

    fn pending(kind: Kind, n: u8) -> Pending {
        Pending {
            kind,
            token: token(n),
            target: token(n),
            scheduled_ns: u64::from(n),
        }
    }

    #[test]
    fn takes_in_any_order_by_match_or_by_id_and_counts_what_is_left() {
        let mut window = Window::with_capacity(4);
        let ids: Vec<u64> = (0..5u8).map(|n| window.push(pending(Kind::Quote, n))).collect();
        assert_eq!(ids, vec![0, 1, 2, 3, 4]);
        assert_eq!(window.len(), 5);
        // From the middle by id, then a wrong guess (taken already, or not matching) takes nothing.
        assert_eq!(
            window
                .take_id(2, |p| p.kind == Kind::Quote)
                .map(|p| p.scheduled_ns),
            Some(2)
        );
        assert!(window.take_id(2, |_| true).is_none());
        assert!(window.take_id(3, |p| p.kind == Kind::Cancel).is_none());
        assert!(window.take_id(99, |_| true).is_none());
        assert_eq!(window.len(), 4);
        // By match from the front: skips the taken one.
        let got: Vec<u64> =
            std::iter::from_fn(|| window.take_first(|_| true).map(|p| p.scheduled_ns)).collect();
        assert_eq!(got, vec![0, 1, 3, 4]);
        assert!(window.is_empty());
        assert!(window.entries.is_empty());
    }

    #[test]
    fn a_stuck_front_does_not_let_taken_entries_pile_up() {
        let mut window = Window::with_capacity(4);
        window.push(pending(Kind::Cancel, 0)); // never answered
        for n in 0..1_000u32 {
            let id = window.push(pending(Kind::Quote, (n % 200) as u8 + 1));
            assert!(window.take_id(id, |_| true).is_some());
            assert!(
                window.entries.len() <= 2 * 64 + 1,
                "{} entries",
                window.entries.len()
            );
        }
        assert_eq!(window.len(), 1);
        assert_eq!(window.take_first(|_| true).map(|p| p.kind), Some(Kind::Cancel));
    }
}
