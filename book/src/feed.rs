//! A book rebuilt only from ITCH 5.0 messages: what a feed receiver (and the daemon's snapshot server) knows.
//!
//! [`FeedBook`] owns the per-order and per-level state that the ITCH 5.0 messages of `bourse_protocol::itch`
//! describe: the stock directory (Stock Locate -> symbol, the whole `R` message), the trading state per
//! instrument (the last `H`), the last System Event, and every displayed resting order with its open shares,
//! price, side, attribution and the timestamp at which it got its time priority. It does not own framing
//! (MoldUDP64, SoupBinTCP), feed sequence numbers, gap handling or any I/O: the caller decodes a message (or
//! passes its bytes to [`FeedBook::apply_bytes`]) and applies it in feed order.
//!
//! # What each message does
//! - `S` System Event: kept (the last one). `R` Stock Directory: the locate's entry (replaced if re-sent).
//! - `H` Trading Action: the locate's trading state (the last one).
//! - `A` / `F` Add Order: a new order at the back of its price level (time priority); `F` keeps the
//!   attribution.
//! - `E` / `C` Executed: open shares go down; at zero the order leaves the book (no `D` follows, EV-01).
//! - `X` Cancel: open shares go down, priority kept. `D` Delete: the order leaves the book.
//! - `U` Replace: the original leaves, the new reference joins the back of its (new) level with the original's
//!   side, instrument and attribution, and the `U`'s timestamp as its priority time.
//! - `P` Trade, `B` Broken Trade: counted, no book change. `G` (snapshot end) is not a feed message: an error.
//!
//! # Invariants
//! - A message that fails (unknown order reference: a gap; a full table; shares beyond the open size; an
//!   unknown locate) returns a [`FeedError`] and leaves the book exactly as it was; nothing panics on input.
//! - Within a level, orders are kept in arrival order (a doubly linked list through the order slots); a level
//!   exists only while it holds at least one order; its `shares` and `orders` are the sums of its orders.
//! - Levels of one side of one instrument are kept sorted with the best price last (bids ascending, asks
//!   descending), so the busy end of the book is the cheap end to insert at.
//!
//! # Limits (all given by the caller in [`FeedBookLimits`]; no allocation per message once built)
//! - `locates_max`: Stock Locates `1..=locates_max`; any other locate is [`FeedError::LocateOutOfRange`].
//! - `orders_max`: resting orders at once; one more is [`FeedError::OrdersFull`]. The reference index is an
//!   open-addressing table of slot numbers (4 bytes a bucket) with at least twice `orders_max` buckets, linear
//!   probing and backward-shift deletion (no tombstones): its load stays at or below one half and it never
//!   grows.
//! - `levels_max`: price levels per side per instrument; a new level past it is [`FeedError::LevelsFull`].
//!
//! Queries ([`FeedBook::depth`], [`FeedBook::orders`]) allocate only their answer (depth) or nothing
//! (the order iterator).
//!
//! # Performance
//! A level is found by binary search on a branch-free key (bids by price, asks by its complement). Measured
//! with `cargo run --release -p bourse-book --example feed_throughput` (decode included, ~10,000 resting
//! orders): about 90 ns per message, 0.59-0.69x the time of a `BTreeMap`/`HashMap` book in the same run.

use bourse_protocol::fields::{Firm, Symbol};
use bourse_protocol::itch::{
    self, EventCode, Message, Side, StockDirectory, SystemEvent, Timestamp48, TradingAction, TradingState,
};
use thiserror::Error;

/// Sizes of a [`FeedBook`]'s tables, fixed at construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FeedBookLimits {
    /// Stock Locates `1..=locates_max` are accepted.
    pub locates_max: u16,
    /// Resting orders at once, over all instruments.
    pub orders_max: u32,
    /// Price levels per side per instrument.
    pub levels_max: u32,
}

/// Why a message could not be applied. The book is unchanged when one of these is returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum FeedError {
    /// The bytes are not an ITCH message.
    #[error("undecodable ITCH message: {0}")]
    Decode(#[from] itch::DecodeError),
    /// The message is not one a feed carries (the snapshot end marker `G`).
    #[error("ITCH message type {:?} is not a feed message", *message_type as char)]
    NotAFeedMessage {
        /// The Message Type.
        message_type: u8,
    },
    /// The Stock Locate is 0 or above `locates_max`.
    #[error("stock locate {locate} outside 1..={locates_max}")]
    LocateOutOfRange {
        /// The locate received.
        locate: u16,
        /// The configured maximum.
        locates_max: u16,
    },
    /// An order message for a locate that no Stock Directory announced.
    #[error("stock locate {locate} has no stock directory")]
    UnknownLocate {
        /// The locate received.
        locate: u16,
    },
    /// An Add Order whose stock is not the one its locate's directory names.
    #[error("stock {stock:?} does not match locate {locate}")]
    StockMismatch {
        /// The locate received.
        locate: u16,
        /// The stock the message carries.
        stock: Symbol,
    },
    /// An order reference the book does not hold (a message was missed: a gap).
    #[error("unknown order reference {reference}")]
    UnknownOrder {
        /// The order reference number.
        reference: u64,
    },
    /// An Add Order or Replace with a reference already on the book.
    #[error("order reference {reference} already on the book")]
    DuplicateOrder {
        /// The order reference number.
        reference: u64,
    },
    /// Executed or canceled shares beyond the order's open shares (or zero).
    #[error("order {reference}: {shares} shares against {open} open")]
    BadShares {
        /// The order reference number.
        reference: u64,
        /// Shares the message removes.
        shares: u32,
        /// The order's open shares.
        open: u32,
    },
    /// An Add Order or Replace with zero shares.
    #[error("order {reference} with zero shares")]
    ZeroShares {
        /// The order reference number.
        reference: u64,
    },
    /// `orders_max` resting orders already.
    #[error("order table full ({orders_max} orders)")]
    OrdersFull {
        /// The configured maximum.
        orders_max: u32,
    },
    /// `levels_max` levels on that side already.
    #[error("locate {locate} side {side:?}: level table full ({levels_max} levels)")]
    LevelsFull {
        /// The locate.
        locate: u16,
        /// The side.
        side: Side,
        /// The configured maximum.
        levels_max: u32,
    },
}

/// An instrument named by its Stock Locate or its symbol, for the queries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instrument {
    /// By Stock Locate.
    Locate(u16),
    /// By symbol (the Stock Directory's).
    Symbol(Symbol),
}

impl From<u16> for Instrument {
    fn from(locate: u16) -> Self {
        Self::Locate(locate)
    }
}

impl From<Symbol> for Instrument {
    fn from(symbol: Symbol) -> Self {
        Self::Symbol(symbol)
    }
}

/// One price level of [`FeedBook::depth`]: `(price, shares, orders)`.
pub type DepthLevel = (u32, u64, u32);

/// A resting order as the feed shows it (an Add Order's fields, current open shares).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestingOrder {
    /// Order Reference Number.
    pub reference: u64,
    /// Stock Locate.
    pub locate: u16,
    /// Side.
    pub side: Side,
    /// Limit price, 4 implied decimals.
    pub price: u32,
    /// Open shares.
    pub shares: u32,
    /// When the order got its time priority (its Add or Replace).
    pub timestamp: Timestamp48,
    /// The attribution of an `F` Add Order (`None` for `A`).
    pub attribution: Option<Firm>,
}

const NIL: u32 = u32::MAX;

#[derive(Clone, Copy, Debug)]
struct OrderSlot {
    order: RestingOrder,
    prev: u32,
    next: u32,
}

#[derive(Clone, Copy, Debug)]
struct Level {
    /// [`sort_key`] of the price.
    key: u32,
    price: u32,
    orders: u32,
    shares: u64,
    head: u32,
    tail: u32,
}

/// Levels of one side of one instrument, best price last.
#[derive(Debug)]
struct SideLevels {
    levels: Vec<Level>,
}

/// Order reference -> slot: open addressing (linear probing, backward-shift deletion) over buckets that
/// hold the reference's low 32 bits beside the slot number, so that a probe reads no order slot until it
/// has found its key.
///
/// The home bucket is the reference's low bits, not a scrambled hash: the references of one exchange's
/// feed are assigned in sequence, so the orders added together share cache lines of the index (eight
/// buckets per line), and an add touches the line the previous add warmed. A Fibonacci hash scattered every
/// add and every delete to a cold line, and read the order slot of each bucket it passed: the feed book was
/// about 15 % of the `boursed` pipeline thread on the load generator's mix with ~20,000 resting orders.
/// References that collide (equal modulo the bucket count, twice `orders_max` rounded up) just probe on.
#[derive(Debug)]
struct ReferenceIndex {
    buckets: Vec<Bucket>,
}

#[derive(Clone, Copy, Debug)]
struct Bucket {
    /// The reference's low 32 bits.
    key: u32,
    /// The order's slot, or [`NIL`] for an empty bucket.
    slot: u32,
}

const EMPTY: Bucket = Bucket { key: 0, slot: NIL };

/// Where a reference is in the index, or where it would go.
enum Probe {
    Found(usize),
    Vacant(usize),
}

impl ReferenceIndex {
    fn new(orders_max: u32) -> ReferenceIndex {
        let buckets = (orders_max as usize * 2).next_power_of_two().max(2);
        ReferenceIndex {
            buckets: vec![EMPTY; buckets],
        }
    }

    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    fn home(&self, key: u32) -> usize {
        key as usize & self.mask()
    }

    fn probe(&self, reference: u64, slots: &[OrderSlot]) -> Probe {
        let mask = self.mask();
        let key = reference as u32;
        let mut i = self.home(key);
        // The load is at most one half, so an empty bucket is always reached.
        loop {
            let bucket = self.buckets[i];
            if bucket.slot == NIL {
                return Probe::Vacant(i);
            }
            if bucket.key == key && slots[bucket.slot as usize].order.reference == reference {
                return Probe::Found(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The address of the bucket where a probe for `reference` starts.
    fn home_address(&self, reference: u64) -> *const u8 {
        std::ptr::from_ref(&self.buckets[self.home(reference as u32)]).cast()
    }

    fn get(&self, reference: u64, slots: &[OrderSlot]) -> Option<u32> {
        match self.probe(reference, slots) {
            Probe::Found(i) => Some(self.buckets[i].slot),
            Probe::Vacant(_) => None,
        }
    }

    fn set(&mut self, i: usize, reference: u64, slot: u32) {
        self.buckets[i] = Bucket {
            key: reference as u32,
            slot,
        };
    }

    /// Removes bucket `i`, shifting back the entries of its probe run that would no longer be reachable.
    fn remove_at(&mut self, mut i: usize) {
        let mask = self.mask();
        self.buckets[i] = EMPTY;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let bucket = self.buckets[j];
            if bucket.slot == NIL {
                return;
            }
            let home = self.home(bucket.key);
            // The entry at j stays if its home lies cyclically in (i, j].
            let stays = if i <= j {
                i < home && home <= j
            } else {
                i < home || home <= j
            };
            if !stays {
                self.buckets[i] = bucket;
                self.buckets[j] = EMPTY;
                i = j;
            }
        }
    }

    fn clear(&mut self) {
        self.buckets.fill(EMPTY);
    }
}

/// The order reference an ITCH `E`, `C`, `X`, `D` or `U` names (a `U`'s original), read from its bytes;
/// `None` for other messages and for bytes too short to hold one. Every one of them starts with the
/// 11-byte header, then that reference.
#[inline]
fn named_reference(bytes: &[u8]) -> Option<u64> {
    let names_an_order = matches!(
        *bytes.first()?,
        itch::OrderExecuted::TYPE
            | itch::OrderExecutedWithPrice::TYPE
            | itch::OrderCancel::TYPE
            | itch::OrderDelete::TYPE
            | itch::OrderReplace::TYPE
    );
    if !names_an_order {
        return None;
    }
    Some(u64::from_be_bytes(bytes.get(11..19)?.try_into().ok()?))
}

/// A book rebuilt from ITCH 5.0 messages. See the module header for what each message does.
#[derive(Debug)]
pub struct FeedBook {
    limits: FeedBookLimits,
    /// Index `locate - 1`.
    directory: Vec<Option<StockDirectory>>,
    /// Index `locate - 1`.
    trading: Vec<Option<TradingAction>>,
    /// Index `(locate - 1) * 2 + side` (buy 0, sell 1).
    sides: Vec<SideLevels>,
    slots: Vec<OrderSlot>,
    free_head: u32,
    live_orders: u32,
    index: ReferenceIndex,
    system_event: Option<SystemEvent>,
    messages_applied: u64,
}

fn side_index(side: Side) -> usize {
    match side {
        Side::Buy => 0,
        Side::Sell => 1,
    }
}

/// A level's sort key: better prices have larger keys on both sides (bids by price, asks by its complement),
/// so a side's levels sort ascending by key with the best last.
fn sort_key(side: Side, price: u32) -> u32 {
    match side {
        Side::Buy => price,
        Side::Sell => u32::MAX - price,
    }
}

impl SideLevels {
    /// `Ok(position)` of the level at `price`, or `Err(insertion point)`.
    fn find(&self, side: Side, price: u32) -> Result<usize, usize> {
        // Sorted worst first, best last: the busy end is the tail.
        let key = sort_key(side, price);
        self.levels.binary_search_by_key(&key, |level| level.key)
    }
}

impl FeedBook {
    /// An empty book with tables of the given sizes, all allocated now.
    ///
    /// # Panics
    /// If a limit is zero or `orders_max` is `u32::MAX` (a programmer error).
    pub fn new(limits: FeedBookLimits) -> Self {
        assert!(limits.locates_max > 0, "locates_max must be positive");
        assert!(
            limits.orders_max > 0 && limits.orders_max < NIL,
            "orders_max out of range"
        );
        assert!(limits.levels_max > 0, "levels_max must be positive");
        let locates = usize::from(limits.locates_max);
        let orders = limits.orders_max as usize;
        let blank = OrderSlot {
            order: RestingOrder {
                reference: 0,
                locate: 0,
                side: Side::Buy,
                price: 0,
                shares: 0,
                timestamp: Timestamp48::from_bytes([0; 6]),
                attribution: None,
            },
            prev: NIL,
            next: NIL,
        };
        let mut slots = vec![blank; orders];
        for (i, slot) in slots.iter_mut().enumerate() {
            slot.next = if i + 1 < orders { (i + 1) as u32 } else { NIL };
        }
        let sides = (0..locates * 2)
            .map(|_| SideLevels {
                levels: Vec::with_capacity(limits.levels_max as usize),
            })
            .collect();
        Self {
            limits,
            directory: vec![None; locates],
            trading: vec![None; locates],
            sides,
            slots,
            free_head: 0,
            live_orders: 0,
            index: ReferenceIndex::new(limits.orders_max),
            system_event: None,
            messages_applied: 0,
        }
    }

    /// The limits the book was built with.
    pub fn limits(&self) -> FeedBookLimits {
        self.limits
    }

    /// Forgets everything (a new day), keeping the allocations.
    pub fn clear(&mut self) {
        self.directory.iter_mut().for_each(|d| *d = None);
        self.trading.iter_mut().for_each(|t| *t = None);
        self.sides.iter_mut().for_each(|s| s.levels.clear());
        let orders = self.slots.len();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            slot.prev = NIL;
            slot.next = if i + 1 < orders { (i + 1) as u32 } else { NIL };
        }
        self.free_head = 0;
        self.live_orders = 0;
        self.index.clear();
        self.system_event = None;
        self.messages_applied = 0;
    }

    /// Where applying the ITCH message `bytes` will first read the reference index, which is large and read
    /// at random: the home bucket of the order an `E`, `C`, `X`, `D` or `U` names. A caller holding the
    /// next message while it applies this one can prefetch that line so that the miss overlaps the work
    /// (this crate has no unsafe code, so it cannot prefetch itself). `None` for other messages (an add's
    /// reference is new, and references are handed out in increasing order, so its bucket is warm) and for
    /// bytes too short to hold a reference. Reading the address is harmless; it is never dereferenced here.
    #[inline]
    pub fn lookup_address(&self, bytes: &[u8]) -> Option<*const u8> {
        Some(self.index.home_address(named_reference(bytes)?))
    }

    /// The second step of a lookahead, once the line of [`FeedBook::lookup_address`] is in: the first
    /// byte of the order slot its home bucket names, if the bucket holds the reference's low bits (read
    /// here: call this only after prefetching that bucket). Applying the message reads that slot right
    /// after the bucket (to compare the whole reference), and it misses as often. `None` as for
    /// `lookup_address`, and when the home bucket holds another reference. Never dereferenced here.
    #[inline]
    pub fn slot_address(&self, bytes: &[u8]) -> Option<*const u8> {
        let reference = named_reference(bytes)?;
        let bucket = self.index.buckets[self.index.home(reference as u32)];
        if bucket.slot == NIL || bucket.key != reference as u32 {
            return None;
        }
        self.slots
            .get(bucket.slot as usize)
            .map(|slot| std::ptr::from_ref(slot).cast())
    }

    /// Decodes one ITCH message and applies it.
    ///
    /// # Errors
    /// [`FeedError::Decode`] for bytes that are not a message, else as [`FeedBook::apply`].
    pub fn apply_bytes(&mut self, bytes: &[u8]) -> Result<(), FeedError> {
        let message = Message::decode(bytes)?;
        self.apply(&message)
    }

    /// Applies one ITCH message, in feed order.
    ///
    /// # Errors
    /// See [`FeedError`]; on error the book is unchanged and the message is not counted.
    pub fn apply(&mut self, message: &Message) -> Result<(), FeedError> {
        match message {
            Message::SystemEvent(m) => self.system_event = Some(*m),
            Message::StockDirectory(m) => {
                let i = self.locate_index(m.header.stock_locate)?;
                self.directory[i] = Some(*m);
            }
            Message::TradingAction(m) => {
                let i = self.locate_index(m.header.stock_locate)?;
                self.trading[i] = Some(*m);
            }
            Message::AddOrder(m) => self.add(
                RestingOrder {
                    reference: m.order_reference_number,
                    locate: m.header.stock_locate,
                    side: m.side,
                    price: m.price,
                    shares: m.shares,
                    timestamp: m.header.timestamp,
                    attribution: None,
                },
                Some(m.stock),
            )?,
            Message::AddOrderMpid(m) => self.add(
                RestingOrder {
                    reference: m.order_reference_number,
                    locate: m.header.stock_locate,
                    side: m.side,
                    price: m.price,
                    shares: m.shares,
                    timestamp: m.header.timestamp,
                    attribution: Some(m.attribution),
                },
                Some(m.stock),
            )?,
            Message::OrderExecuted(m) => self.reduce(m.order_reference_number, m.executed_shares)?,
            Message::OrderExecutedWithPrice(m) => self.reduce(m.order_reference_number, m.executed_shares)?,
            Message::OrderCancel(m) => self.reduce(m.order_reference_number, m.canceled_shares)?,
            Message::OrderDelete(m) => {
                let (bucket, slot) = self.slot_of(m.order_reference_number)?;
                self.remove(slot, bucket);
            }
            Message::OrderReplace(m) => self.replace(m)?,
            Message::Trade(_) | Message::BrokenTrade(_) => {}
            Message::SnapshotEnd(_) => {
                return Err(FeedError::NotAFeedMessage {
                    message_type: itch::SnapshotEnd::TYPE,
                });
            }
        }
        self.messages_applied += 1;
        Ok(())
    }

    fn locate_index(&self, locate: u16) -> Result<usize, FeedError> {
        if locate == 0 || locate > self.limits.locates_max {
            return Err(FeedError::LocateOutOfRange {
                locate,
                locates_max: self.limits.locates_max,
            });
        }
        Ok(usize::from(locate - 1))
    }

    fn known_locate(&self, locate: u16) -> Result<usize, FeedError> {
        let i = self.locate_index(locate)?;
        if self.directory[i].is_none() {
            return Err(FeedError::UnknownLocate { locate });
        }
        Ok(i)
    }

    /// The index bucket and the slot of a live order (the bucket lets [`FeedBook::remove`] skip a
    /// second probe).
    fn slot_of(&self, reference: u64) -> Result<(usize, u32), FeedError> {
        match self.index.probe(reference, &self.slots) {
            Probe::Found(i) => Ok((i, self.index.buckets[i].slot)),
            Probe::Vacant(_) => Err(FeedError::UnknownOrder { reference }),
        }
    }

    fn side_levels(&self, locate: u16, side: Side) -> &SideLevels {
        &self.sides[usize::from(locate - 1) * 2 + side_index(side)]
    }

    /// Checks everything an add of `order` needs, and returns the index bucket where its reference goes
    /// (valid until the index changes: an add inserts there, a replace removes its original first and
    /// probes again). A replace frees its original's slot first (`slot_freed`), and its original's level
    /// when the original was alone there (`level_freed`).
    fn check_add(
        &self,
        order: &RestingOrder,
        stock: Option<Symbol>,
        slot_freed: bool,
        level_freed: bool,
    ) -> Result<usize, FeedError> {
        let i = self.known_locate(order.locate)?;
        if let (Some(stock), Some(directory)) = (stock, &self.directory[i])
            && stock != directory.stock
        {
            return Err(FeedError::StockMismatch {
                locate: order.locate,
                stock,
            });
        }
        if order.shares == 0 {
            return Err(FeedError::ZeroShares {
                reference: order.reference,
            });
        }
        let bucket = match self.index.probe(order.reference, &self.slots) {
            Probe::Vacant(i) => i,
            Probe::Found(_) => {
                return Err(FeedError::DuplicateOrder {
                    reference: order.reference,
                });
            }
        };
        if self.free_head == NIL && !slot_freed {
            return Err(FeedError::OrdersFull {
                orders_max: self.limits.orders_max,
            });
        }
        let levels = self.side_levels(order.locate, order.side);
        // The search only when the side is full (rare): an add to a side with room never needs it.
        if !level_freed
            && levels.levels.len() >= self.limits.levels_max as usize
            && levels.find(order.side, order.price).is_err()
        {
            return Err(FeedError::LevelsFull {
                locate: order.locate,
                side: order.side,
                levels_max: self.limits.levels_max,
            });
        }
        Ok(bucket)
    }

    fn add(&mut self, order: RestingOrder, stock: Option<Symbol>) -> Result<(), FeedError> {
        let bucket = self.check_add(&order, stock, false, false)?;
        self.insert(order, Some(bucket));
        Ok(())
    }

    /// Inserts a checked order at the back of its level; its reference goes to index bucket `bucket`
    /// when given (from [`FeedBook::check_add`], the index unchanged since), else where a probe finds room.
    fn insert(&mut self, order: RestingOrder, bucket: Option<usize>) {
        let slot = self.free_head;
        assert!(slot != NIL, "insert without a free slot");
        self.free_head = self.slots[slot as usize].next;
        let side_index = usize::from(order.locate - 1) * 2 + side_index(order.side);
        let levels = &mut self.sides[side_index];
        let position = match levels.find(order.side, order.price) {
            Ok(position) => position,
            Err(position) => {
                assert!(
                    levels.levels.len() < levels.levels.capacity(),
                    "level table grows"
                );
                levels.levels.insert(
                    position,
                    Level {
                        key: sort_key(order.side, order.price),
                        price: order.price,
                        orders: 0,
                        shares: 0,
                        head: NIL,
                        tail: NIL,
                    },
                );
                position
            }
        };
        let level = &mut levels.levels[position];
        let previous_tail = level.tail;
        level.tail = slot;
        if level.head == NIL {
            level.head = slot;
        }
        level.orders += 1;
        level.shares += u64::from(order.shares);
        if previous_tail != NIL {
            self.slots[previous_tail as usize].next = slot;
        }
        self.slots[slot as usize] = OrderSlot {
            order,
            prev: previous_tail,
            next: NIL,
        };
        let bucket = bucket.unwrap_or_else(|| match self.index.probe(order.reference, &self.slots) {
            Probe::Vacant(i) => i,
            Probe::Found(_) => panic!("duplicate reference {} inserted", order.reference),
        });
        debug_assert!(
            matches!(self.index.probe(order.reference, &self.slots), Probe::Vacant(i) if i == bucket)
        );
        self.index.set(bucket, order.reference, slot);
        self.live_orders += 1;
    }

    /// Removes the order in `slot`, whose reference is in index bucket `bucket`, from its level, the index
    /// and the arena.
    fn remove(&mut self, slot: u32, bucket: usize) {
        let OrderSlot { order, prev, next } = self.slots[slot as usize];
        let side_index = usize::from(order.locate - 1) * 2 + side_index(order.side);
        let levels = &mut self.sides[side_index];
        let position = levels
            .find(order.side, order.price)
            .expect("a live order's level exists");
        let level = &mut levels.levels[position];
        if prev == NIL {
            level.head = next;
        }
        if next == NIL {
            level.tail = prev;
        }
        level.orders -= 1;
        level.shares -= u64::from(order.shares);
        if level.orders == 0 {
            levels.levels.remove(position);
        }
        if prev != NIL {
            self.slots[prev as usize].next = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        }
        debug_assert!(
            self.index.buckets[bucket].slot == slot,
            "the bucket holds the order's slot"
        );
        self.index.remove_at(bucket);
        self.slots[slot as usize].prev = NIL;
        self.slots[slot as usize].next = self.free_head;
        self.free_head = slot;
        self.live_orders -= 1;
    }

    /// Takes `shares` off an order (execution or cancel); at zero the order leaves.
    fn reduce(&mut self, reference: u64, shares: u32) -> Result<(), FeedError> {
        let (bucket, slot) = self.slot_of(reference)?;
        let order = self.slots[slot as usize].order;
        if shares == 0 || shares > order.shares {
            return Err(FeedError::BadShares {
                reference,
                shares,
                open: order.shares,
            });
        }
        if shares == order.shares {
            self.remove(slot, bucket);
            return Ok(());
        }
        self.slots[slot as usize].order.shares -= shares;
        let levels = &mut self.sides[usize::from(order.locate - 1) * 2 + side_index(order.side)];
        let position = levels
            .find(order.side, order.price)
            .expect("a live order's level exists");
        levels.levels[position].shares -= u64::from(shares);
        Ok(())
    }

    fn replace(&mut self, m: &itch::OrderReplace) -> Result<(), FeedError> {
        let (bucket, slot) = self.slot_of(m.original_order_reference_number)?;
        let original = self.slots[slot as usize].order;
        let replacement = RestingOrder {
            reference: m.new_order_reference_number,
            locate: original.locate,
            side: original.side,
            price: m.price,
            shares: m.shares,
            timestamp: m.header.timestamp,
            attribution: original.attribution,
        };
        if m.header.stock_locate != original.locate {
            return Err(FeedError::UnknownOrder {
                reference: m.original_order_reference_number,
            });
        }
        let levels = self.side_levels(original.locate, original.side);
        let original_alone = levels
            .find(original.side, original.price)
            .map(|p| levels.levels[p].orders == 1)
            .unwrap_or(false);
        self.check_add(&replacement, None, true, original_alone)?;
        // The removal may shift the index's buckets: the replacement probes again.
        self.remove(slot, bucket);
        self.insert(replacement, None);
        Ok(())
    }

    // -----------------------------------------------------------------------------------------------------
    // Queries

    /// The Stock Locate of an instrument, if its directory entry is known.
    pub fn locate_of(&self, instrument: impl Into<Instrument>) -> Option<u16> {
        match instrument.into() {
            Instrument::Locate(locate) => {
                let i = self.locate_index(locate).ok()?;
                self.directory[i].map(|_| locate)
            }
            Instrument::Symbol(symbol) => self
                .directory
                .iter()
                .position(|d| d.is_some_and(|d| d.stock == symbol))
                .map(|i| (i + 1) as u16),
        }
    }

    /// The top `levels` price levels of each side, best first: `(bids, asks)`; `None` for an unknown
    /// instrument.
    pub fn depth(
        &self,
        instrument: impl Into<Instrument>,
        levels: usize,
    ) -> Option<(Vec<DepthLevel>, Vec<DepthLevel>)> {
        let locate = self.locate_of(instrument)?;
        let side = |side: Side| -> Vec<DepthLevel> {
            self.side_levels(locate, side)
                .levels
                .iter()
                .rev()
                .take(levels)
                .map(|l| (l.price, l.shares, l.orders))
                .collect()
        };
        Some((side(Side::Buy), side(Side::Sell)))
    }

    /// The resting orders of one side of an instrument in priority order (best level first, time priority
    /// within a level); empty for an unknown instrument.
    pub fn orders(&self, instrument: impl Into<Instrument>, side: Side) -> Orders<'_> {
        let (levels, cursor): (&[Level], u32) = match self.locate_of(instrument) {
            Some(locate) => {
                let levels = &self.side_levels(locate, side).levels[..];
                (levels, levels.last().map_or(NIL, |l| l.head))
            }
            None => (&[], NIL),
        };
        Orders {
            book: self,
            levels,
            level_position: levels.len(),
            cursor,
        }
    }

    /// The order with this reference, if it rests.
    pub fn order(&self, reference: u64) -> Option<RestingOrder> {
        self.index
            .get(reference, &self.slots)
            .map(|slot| self.slots[slot as usize].order)
    }

    /// The Stock Directory message of a locate, if announced.
    pub fn directory(&self, locate: u16) -> Option<&StockDirectory> {
        self.locate_index(locate)
            .ok()
            .and_then(|i| self.directory[i].as_ref())
    }

    /// Every announced Stock Directory, in Stock Locate order.
    pub fn directories(&self) -> impl Iterator<Item = &StockDirectory> {
        self.directory.iter().flatten()
    }

    /// The last Trading Action of a locate, if any was applied.
    pub fn trading_action(&self, locate: u16) -> Option<&TradingAction> {
        self.locate_index(locate)
            .ok()
            .and_then(|i| self.trading[i].as_ref())
    }

    /// The trading state of a locate: the last Trading Action's, `None` if none was applied.
    pub fn trading_state(&self, locate: u16) -> Option<TradingState> {
        self.trading_action(locate).map(|t| t.trading_state)
    }

    /// True when the locate's last Trading Action is not `T` (halted, paused or quotation only).
    pub fn is_halted(&self, locate: u16) -> bool {
        self.trading_state(locate)
            .is_some_and(|s| s != TradingState::Trading)
    }

    /// The last System Event applied.
    pub fn system_event(&self) -> Option<&SystemEvent> {
        self.system_event.as_ref()
    }

    /// The last System Event code applied.
    pub fn last_event_code(&self) -> Option<EventCode> {
        self.system_event.map(|e| e.event_code)
    }

    /// Messages applied successfully since construction (or [`FeedBook::clear`]).
    pub fn messages_applied(&self) -> u64 {
        self.messages_applied
    }

    /// Resting orders, all instruments.
    pub fn live_orders(&self) -> u32 {
        self.live_orders
    }
}

/// Iterator over one side's resting orders in priority order ([`FeedBook::orders`]). Allocates nothing.
#[derive(Debug)]
pub struct Orders<'a> {
    book: &'a FeedBook,
    levels: &'a [Level],
    /// One past the level being walked (levels are walked from the end: best first).
    level_position: usize,
    cursor: u32,
}

impl Iterator for Orders<'_> {
    type Item = RestingOrder;

    fn next(&mut self) -> Option<RestingOrder> {
        while self.cursor == NIL {
            if self.level_position <= 1 {
                self.level_position = 0;
                return None;
            }
            self.level_position -= 1;
            self.cursor = self.levels[self.level_position - 1].head;
        }
        let slot = &self.book.slots[self.cursor as usize];
        self.cursor = slot.next;
        Some(slot.order)
    }
}
