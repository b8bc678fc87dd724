//! The market-data stage: MoldUDP64 on groups A and B, heartbeats, End of Session, the re-request server and
//! the snapshot server, as one [`Agent`] ("market_data").
//!
//! # What it owns
//! - The feed publisher: [`ToFeed`] records from the core (already journaled and released, in feed-sequence
//!   order) go into MoldUDP64 packets ([`PacketBuilder`], at most `payload_bytes_max` bytes, a message never
//!   split); a packet is sent when full, at every [`ToFeed::Flush`] (the end of a core batch) and whenever the
//!   ring is drained (a message never waits for a record that has not arrived), byte for byte
//!   the same to group A and group B from one UDP socket (IP_MULTICAST_IF = `interface`, loop on, TTL 1).
//!   After `heartbeat_interval_ms` without a packet: a heartbeat (count 0, the next sequence) on both groups;
//!   after [`ToFeed::EndOfSession`]: End of Session (count 0xFFFF) at once and then in place of heartbeats.
//! - The [`FeedBook`] (the snapshot book), built only from journaled ITCH: at construction from the day's
//!   `KIND_ITCH` journal records (from `day_start_journal_seq`), so that it survives restarts and the feed
//!   sequence continues after the last journaled one; after that by a second journal reader of its own,
//!   which follows the released feed *off the publishing path*: up to [`BOOK_IDLE_RECORDS_PER_WORK`]
//!   records in a round once the ring has had nothing to publish for [`BOOK_IDLE_AFTER_NS`] (not counted
//!   as work: it is what an idle pipeline does, and the busy time stays the cost of requests), and up to
//!   [`BOOK_CATCH_UP_RECORDS_PER_POLL`] per snapshot poll while a snapshot connection has not logged in
//!   yet (a client that stays connected after its image does not keep the book eager). A snapshot
//!   login is answered only once the book holds every released message (so an image is never older than
//!   what was multicast when it was taken); under a sustained flood the book lags, and the lag is paid
//!   when the pipeline goes idle or a snapshot client connects, never by the feed (docs/ARCHITECTURE.md,
//!   "The snapshot book follows the journal").
//! - The re-request server (docs/protocol.md 7.6): 20-byte requests on the re-request socket, a bounded queue
//!   (`rerequest_queue_max`, dropped when full), answers of ordinary downstream packets unicast to the
//!   requester, at most `min(count, rerequest_count_max)` messages and never past the last message sent, read
//!   from the journal through a sparse feed-sequence -> journal-sequence index ([`FeedIndex`]).
//! - The snapshot server ([`crate::snapshot`]).
//!
//! # Invariants
//! - Feed sequence numbers are contiguous: a [`ToFeed::Message`] below the next expected number was already
//!   read from the journal at start-up and is skipped; one above it is a core bug (assert).
//! - A message leaves only after the core released it; the test hook `drop_feed_seqs` puts each listed message
//!   alone in a packet that is not sent (it is in the book and re-requestable).
//! - The publisher allocates nothing per message; the re-request server and the snapshot server work in
//!   bounded slices per `do_work` ([`RERQ_RECORDS_PER_WORK_MAX`], [`crate::snapshot`] limits).
//! - Network sockets other than the multicast sender (re-request, snapshot) are polled at most every
//!   [`IO_POLL_INTERVAL_NS`], so a busy pipeline thread does not pay their syscalls per round.
//!
//! # Latency
//! Histogram `market_data`: from popping the first record of a packet to the packet's send, one sample per
//! packet, published every [`stats::PUBLISH_INTERVAL_NS`].
//!
//! # Shutdown
//! Once `core_closed` is set and the ring is empty: flush and set `feed_closed` (msg::Lifecycle).

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bourse_book::feed::{FeedBook, FeedBookLimits};
use bourse_journal::{MmapStorage, Reader, Record};
use bourse_protocol::journaled::{KIND_ITCH, decode_itch};
use bourse_protocol::moldudp64::{self, PacketBuilder, PushError};
use hdrhistogram::Histogram;
use socket2::{Domain, Protocol, Socket, Type};

use crate::agent::{Agent, Clock};
use crate::config::{self, Config};
use crate::msg::{self, SessionName, ToFeed};
use crate::ring;
use crate::snapshot::{SessionTimers, SnapshotCounters, SnapshotServer};
use crate::stats;

/// Ring records handled per `do_work`.
pub const FEED_RECORDS_PER_WORK_MAX: usize = 4096;
/// Journal records the snapshot book reads in a round where the feed ring had nothing to publish (small:
/// an order that arrives meanwhile waits for them).
pub const BOOK_IDLE_RECORDS_PER_WORK: usize = 64;
/// The feed counts as idle for the snapshot book once nothing was published for this long: a saturated
/// pipeline has short gaps too (a round whose socket reads found nothing yet), and work in them delays
/// the next requests.
pub const BOOK_IDLE_AFTER_NS: u64 = 20_000;
/// Journal records the snapshot book reads per snapshot poll ([`IO_POLL_INTERVAL_NS`]) while a snapshot
/// connection awaits its login: a client that connects after a long flood waits for a catch-up in slices of this
/// size, not for one long pause of the pipeline thread.
pub const BOOK_CATCH_UP_RECORDS_PER_POLL: usize = 32_768;
/// Journal records read per `do_work` while answering re-requests.
pub const RERQ_RECORDS_PER_WORK_MAX: usize = 4096;
/// Re-request datagrams read per `do_work`.
pub const RERQ_RECV_PER_WORK_MAX: usize = 64;
/// Journal batches the re-request reader's scanner catches up per `do_work` when idle.
pub const RERQ_SCAN_BATCHES_PER_WORK_MAX: usize = 64;
/// After a catch-up scan of the re-request reader found nothing new, the next one waits this long.
pub const SCAN_RETRY_NS: u64 = 1_000_000;
/// How often the re-request and snapshot sockets are polled, nanoseconds.
pub const IO_POLL_INTERVAL_NS: u64 = 50_000;
/// Kernel send buffer asked for on the multicast and re-request sockets.
pub const SEND_BUFFER_BYTES: usize = 4 << 20;
/// Entries of the feed-sequence index before it thins itself (doubling its stride).
pub const FEED_INDEX_ENTRIES_MAX: usize = 1 << 16;
/// Feed messages between two index entries at the start of a day.
pub const FEED_INDEX_STRIDE_MIN: u64 = 64;

/// Everything the market-data stage needs, from `main`.
pub struct MarketDataParams {
    /// `[market_data]`.
    pub market_data: config::MarketDataConfig,
    /// `[snapshot]`.
    pub snapshot: config::SnapshotConfig,
    /// Credentials (snapshot logins use the order-entry ones).
    pub logins: Vec<config::SessionLogin>,
    /// The day's session name (MoldUDP64 and snapshot).
    pub session: SessionName,
    /// False after end of day: snapshot logins get `J` `S`, End of Session is repeated instead of heartbeats.
    pub day_open: bool,
    /// The re-request server's socket (bound by main).
    pub rerequest_socket: UdpSocket,
    /// The snapshot server's listener (bound by main).
    pub snapshot_listener: std::net::TcpListener,
    /// The journal directory.
    pub journal_dir: PathBuf,
    /// Journal sequence where the current day starts (its `KIND_ITCH` records from here are the day's feed).
    pub day_start_journal_seq: u64,
    /// Core -> market data ring.
    pub feed: ring::Consumer<ToFeed>,
    /// Numbers for admin.
    pub shared: Arc<stats::Shared>,
    /// Shutdown handshake.
    pub lifecycle: Arc<msg::Lifecycle>,
    /// The runner clock: the one whose `now_ns` the runner passes to `do_work` (timers mix both).
    pub clock: Clock,
    /// The start-up scan reads journaled ITCH only up to this journal sequence (what recovery found, which
    /// counts as already published); later records (start of day, cancel-on-disconnect at start-up) come
    /// through the ring like any other and are sent. `u64::MAX`: read everything.
    pub scan_to_journal_seq: u64,
    /// Test hook (`BOURSED_TEST_DROP_FEED_SEQS`): these feed sequence numbers are never sent on A or B.
    pub drop_feed_seqs: Vec<u64>,
    /// Table sizes of the feed book (see [`feed_book_limits`]).
    pub book_limits: FeedBookLimits,
    /// Timers of snapshot sessions (see [`SessionTimers::from_order_entry`]).
    pub snapshot_timers: SessionTimers,
}

/// The feed book's sizes for a config: one locate per instrument, the engine's order and level limits.
pub fn feed_book_limits(config: &Config) -> FeedBookLimits {
    FeedBookLimits {
        locates_max: u16::try_from(config.instruments.len().max(1)).unwrap_or(u16::MAX),
        orders_max: config.engine.orders_max.max(1),
        levels_max: config.engine.levels_max.max(1),
    }
}

/// A sparse map feed sequence -> journal sequence of its `KIND_ITCH` record, one entry per `stride` feed
/// messages. Bounded: when it holds [`FEED_INDEX_ENTRIES_MAX`] entries it drops every other one and doubles
/// its stride, so a day of any length fits and a lookup lands at most `stride` messages before its target.
#[derive(Debug)]
pub struct FeedIndex {
    entries: Vec<(u64, u64)>,
    stride: u64,
    /// Where a lookup below the first entry starts.
    start_journal_seq: u64,
}

impl FeedIndex {
    /// An empty index for a day whose journal starts at `start_journal_seq`.
    pub fn new(start_journal_seq: u64) -> FeedIndex {
        FeedIndex {
            entries: Vec::with_capacity(FEED_INDEX_ENTRIES_MAX),
            stride: FEED_INDEX_STRIDE_MIN,
            start_journal_seq,
        }
    }

    /// Notes where feed message `feed_seq` is (calls come in increasing `feed_seq`).
    pub fn note(&mut self, feed_seq: u64, journal_seq: u64) {
        if self
            .entries
            .last()
            .is_some_and(|&(last, _)| feed_seq < last + self.stride)
        {
            return;
        }
        if self.entries.len() == FEED_INDEX_ENTRIES_MAX {
            let mut keep = 0;
            for i in (0..self.entries.len()).step_by(2) {
                self.entries[keep] = self.entries[i];
                keep += 1;
            }
            self.entries.truncate(keep);
            self.stride *= 2;
            if self
                .entries
                .last()
                .is_some_and(|&(last, _)| feed_seq < last + self.stride)
            {
                return;
            }
        }
        self.entries.push((feed_seq, journal_seq));
    }

    /// A journal sequence at or before the record of `feed_seq`.
    pub fn lookup(&self, feed_seq: u64) -> u64 {
        let at = self.entries.partition_point(|&(f, _)| f <= feed_seq);
        if at == 0 {
            self.start_journal_seq
        } else {
            self.entries[at - 1].1
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Counters of the stage (for tests, logs and admin).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MarketDataCounters {
    /// Data packets sent (each on A and B).
    pub packets_sent: u64,
    /// Committed batches the re-request reader could not trust (it scanned them instead).
    pub trust_errors: u64,
    /// Packets not sent because of the `drop_feed_seqs` hook.
    pub packets_dropped: u64,
    /// Heartbeats sent.
    pub heartbeats_sent: u64,
    /// End of Session packets sent.
    pub end_of_session_sent: u64,
    /// Sends that failed (UDP: the receivers re-request).
    pub send_errors: u64,
    /// Feed messages that the snapshot book refused, or failed journal reads of its catch-up (a core bug or
    /// a damaged journal: logged).
    pub book_errors: u64,
    /// Re-requests received and well-formed.
    pub rerequests: u64,
    /// Re-requests ignored (wrong session, count 0, at or past the next number, malformed).
    pub rerequests_ignored: u64,
    /// Re-requests dropped because the queue was full.
    pub rerequests_dropped: u64,
    /// Messages sent in re-request answers.
    pub rerequest_messages: u64,
}

#[derive(Clone, Copy, Debug)]
struct Pending {
    to: SocketAddr,
    /// Next feed sequence to send.
    next: u64,
    /// One past the last to send.
    end: u64,
}

#[derive(Debug)]
struct Serving {
    request: Pending,
    positioned: bool,
}

/// The market-data stage (see the module header).
pub struct MarketData {
    session: SessionName,
    clock: Clock,
    heartbeat_interval_ns: u64,
    rerequest_count_max: u64,
    rerequest_queue_max: usize,
    // Publisher.
    sender: UdpSocket,
    group_a: SocketAddr,
    group_b: SocketAddr,
    builder: PacketBuilder,
    /// Clock time the first message of the packet being built was popped.
    packet_first_pop_ns: u64,
    /// Messages below this were sent (or dropped by the hook): the last sent is `sent_next - 1`.
    sent_next: u64,
    last_packet_ns: u64,
    /// Runner time of the last round that published a ring record.
    last_publish_ns: u64,
    end_of_session: bool,
    day_open: bool,
    drop_feed_seqs: Vec<u64>,
    /// The core's ring: `None` only inside [`MarketData::publish`], which works on the records where they
    /// lie in the ring (see [`ring::Consumer::peek_at`]) while the rest of the stage is borrowed mutably.
    feed: Option<ring::Consumer<ToFeed>>,
    book: FeedBook,
    /// Last feed sequence applied to the book (0: none).
    book_seq: u64,
    /// The book's own journal reader (forked from the start-up reader), and the last journal sequence it
    /// read: it reads on while that is below `released_journal_seq`.
    book_reader: Reader<MmapStorage>,
    book_journal_seq: u64,
    /// Journal sequence of the last released feed message (0: none).
    released_journal_seq: u64,
    // Re-requests.
    rerequest_socket: UdpSocket,
    rerequests: VecDeque<Pending>,
    serving: Option<Serving>,
    reader: Reader<MmapStorage>,
    rerequest_builder: PacketBuilder,
    index: FeedIndex,
    /// Highest journal sequence of a feed message seen (the re-request reader's scan target).
    latest_journal_seq: u64,
    /// No catch-up scan before this time: the last one found nothing new (a scan that finds nothing lists the
    /// journal directory, so it is not repeated every round).
    scan_retry_ns: u64,
    // Snapshots.
    snapshot: SnapshotServer,
    next_io_poll_ns: u64,
    // Stats and shutdown.
    latency: Histogram<u64>,
    next_publish_ns: u64,
    shared: Arc<stats::Shared>,
    lifecycle: Arc<msg::Lifecycle>,
    feed_closed: bool,
    counters: MarketDataCounters,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// The feed sequence and ITCH bytes of a `KIND_ITCH` journal record that must follow `last_feed_seq`.
fn next_feed_message<'a>(record: &Record<'a>, last_feed_seq: u64) -> io::Result<(u64, &'a [u8])> {
    let Some((feed_seq, message)) = decode_itch(record.payload) else {
        return Err(invalid(format!(
            "journal record {}: short KIND_ITCH payload",
            record.sequence
        )));
    };
    if feed_seq != last_feed_seq + 1 {
        return Err(invalid(format!(
            "journal record {}: feed sequence {feed_seq} after {last_feed_seq}",
            record.sequence
        )));
    }
    Ok((feed_seq, message))
}

fn journal_error(e: bourse_journal::JournalError) -> io::Error {
    io::Error::other(format!("journal: {e}"))
}

/// The multicast sender: IP_MULTICAST_IF = `interface`, loop on, TTL 1, bound to `interface`:0, non-blocking.
fn multicast_sender(interface: Ipv4Addr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_multicast_if_v4(&interface)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_multicast_ttl_v4(1)?;
    // Best effort: a burst (a large batch) should not find the kernel buffer full; the kernel may cap it.
    let _ = socket.set_send_buffer_size(SEND_BUFFER_BYTES);
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(interface, 0)).into())?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

impl MarketData {
    /// Builds the stage: reads the day's journaled ITCH into the feed book, opens the multicast sender and
    /// sets the re-request and snapshot sockets non-blocking.
    ///
    /// # Errors
    /// I/O errors; [`io::ErrorKind::InvalidData`] if the journal's feed records are not contiguous from 1 or
    /// the feed book refuses one (the journal does not describe a book).
    pub fn new(p: MarketDataParams) -> io::Result<MarketData> {
        let payload_bytes_max = p.market_data.payload_bytes_max as usize;
        let storage = MmapStorage::open_read_only(&p.journal_dir)
            .map_err(|e| io::Error::other(format!("journal {}: {e}", p.journal_dir.display())))?;
        let mut reader = Reader::new(storage).map_err(journal_error)?;
        reader.seek(p.day_start_journal_seq).map_err(journal_error)?;
        let mut book = FeedBook::new(p.book_limits);
        let mut index = FeedIndex::new(p.day_start_journal_seq);
        let mut last_feed_seq = 0u64;
        let mut latest_journal_seq = p.day_start_journal_seq;
        // The last record read: the loop never reads past `scan_to_journal_seq` (journal sequences are
        // contiguous), so the book's reader, forked below, goes on from the next one.
        let mut read_journal_seq = p.day_start_journal_seq.saturating_sub(1);
        let mut released_journal_seq = 0;
        while read_journal_seq < p.scan_to_journal_seq {
            let Some(record) = reader.next_record().map_err(journal_error)? else {
                break;
            };
            read_journal_seq = record.sequence;
            if record.kind != KIND_ITCH {
                continue;
            }
            let (feed_seq, message) = next_feed_message(&record, last_feed_seq)?;
            book.apply_bytes(message).map_err(|e| {
                invalid(format!(
                    "journal record {} (feed sequence {feed_seq}): {e}",
                    record.sequence
                ))
            })?;
            index.note(feed_seq, record.sequence);
            last_feed_seq = feed_seq;
            latest_journal_seq = record.sequence;
            released_journal_seq = record.sequence;
        }
        let next_feed_seq = last_feed_seq + 1;
        let book_storage = MmapStorage::open_read_only(&p.journal_dir)
            .map_err(|e| io::Error::other(format!("journal {}: {e}", p.journal_dir.display())))?;
        let book_reader = reader.fork(book_storage);
        p.rerequest_socket.set_nonblocking(true)?;
        let _ = Socket::from(p.rerequest_socket.try_clone()?).set_send_buffer_size(SEND_BUFFER_BYTES);
        let sender = multicast_sender(p.market_data.interface)?;
        let snapshot = SnapshotServer::new(
            p.snapshot_listener,
            p.snapshot.sessions_max,
            p.logins,
            p.session,
            p.snapshot_timers,
            Arc::clone(&p.shared),
        )?;
        let mut drop_feed_seqs = p.drop_feed_seqs;
        drop_feed_seqs.sort_unstable();
        drop_feed_seqs.dedup();
        let now_ns = p.clock.now_ns();
        Ok(MarketData {
            session: p.session,
            clock: p.clock,
            heartbeat_interval_ns: p.market_data.heartbeat_interval_ms.saturating_mul(1_000_000),
            rerequest_count_max: u64::from(p.market_data.rerequest_count_max),
            rerequest_queue_max: p.market_data.rerequest_queue_max as usize,
            sender,
            group_a: p.market_data.group_a,
            group_b: p.market_data.group_b,
            builder: PacketBuilder::new(p.session, next_feed_seq, payload_bytes_max),
            packet_first_pop_ns: 0,
            sent_next: next_feed_seq,
            last_packet_ns: now_ns,
            last_publish_ns: 0,
            end_of_session: !p.day_open,
            day_open: p.day_open,
            drop_feed_seqs,
            feed: Some(p.feed),
            book,
            book_seq: last_feed_seq,
            book_reader,
            book_journal_seq: read_journal_seq,
            released_journal_seq,
            rerequest_socket: p.rerequest_socket,
            rerequests: VecDeque::with_capacity(p.market_data.rerequest_queue_max as usize),
            serving: None,
            reader,
            rerequest_builder: PacketBuilder::new(p.session, 1, payload_bytes_max),
            index,
            latest_journal_seq,
            scan_retry_ns: 0,
            snapshot,
            next_io_poll_ns: 0,
            latency: stats::latency_histogram(),
            next_publish_ns: now_ns + stats::PUBLISH_INTERVAL_NS,
            shared: p.shared,
            lifecycle: p.lifecycle,
            feed_closed: false,
            counters: MarketDataCounters::default(),
        })
    }

    /// The snapshot book (as of [`MarketData::book_feed_seq`]; it may lag the feed, see the module header).
    pub fn book(&self) -> &FeedBook {
        &self.book
    }

    /// The last feed sequence applied to the book (0: none).
    pub fn book_feed_seq(&self) -> u64 {
        self.book_seq
    }

    /// The next feed sequence number to be sent.
    pub fn next_feed_seq(&self) -> u64 {
        self.sent_next
    }

    /// The counters so far.
    pub fn counters(&self) -> MarketDataCounters {
        self.counters
    }

    /// The snapshot server's counters so far.
    pub fn snapshot_counters(&self) -> SnapshotCounters {
        self.snapshot.counters()
    }

    /// Finishes the packet being built and sends it to A and B (or drops it for the test hook).
    fn flush_packet(&mut self, drop: bool) {
        let count = u64::from(self.builder.message_count());
        let Some(packet) = self.builder.flush() else {
            return;
        };
        if drop {
            self.counters.packets_dropped += 1;
        } else {
            let a = self.sender.send_to(packet, self.group_a);
            let b = self.sender.send_to(packet, self.group_b);
            self.counters.send_errors += u64::from(a.is_err()) + u64::from(b.is_err());
            self.counters.packets_sent += 1;
        }
        let now_ns = self.clock.now_ns();
        stats::record(&mut self.latency, now_ns.saturating_sub(self.packet_first_pop_ns));
        self.sent_next += count;
        self.last_packet_ns = now_ns;
    }

    fn send_control(&mut self, packet: [u8; moldudp64::HEADER_LEN], now_ns: u64) {
        let a = self.sender.send_to(&packet, self.group_a);
        let b = self.sender.send_to(&packet, self.group_b);
        self.counters.send_errors += u64::from(a.is_err()) + u64::from(b.is_err());
        self.last_packet_ns = now_ns;
    }

    fn on_message(&mut self, feed_seq: u64, journal_seq: u64, message: &[u8]) {
        let next = self.builder.next_sequence_number();
        if feed_seq < next {
            // Read from the journal at start-up already.
            return;
        }
        assert_eq!(
            feed_seq, next,
            "feed sequence gap from the core: {feed_seq} while expecting {next}"
        );
        self.index.note(feed_seq, journal_seq);
        self.latest_journal_seq = self.latest_journal_seq.max(journal_seq);
        self.released_journal_seq = journal_seq;
        let drop = self.drop_feed_seqs.binary_search(&feed_seq).is_ok();
        if drop {
            self.flush_packet(false);
        }
        if self.builder.is_empty() {
            self.packet_first_pop_ns = self.clock.now_ns();
        }
        match self.builder.push(message) {
            Ok(()) => {}
            Err(PushError::Full) => {
                self.flush_packet(false);
                self.packet_first_pop_ns = self.clock.now_ns();
                self.builder
                    .push(message)
                    .expect("an ITCH message fits an empty packet (payload_bytes_max checked by config)");
            }
            Err(PushError::TooLarge { .. }) => {
                panic!("an ITCH message never fits payload_bytes_max: config validation let it through")
            }
        }
        if drop {
            self.flush_packet(true);
        }
    }

    fn feed(&self) -> &ring::Consumer<ToFeed> {
        self.feed
            .as_ref()
            .expect("the feed ring is back after every publish")
    }

    fn publish(&mut self) -> usize {
        let mut feed = self
            .feed
            .take()
            .expect("the feed ring is back after every publish");
        let done = self.publish_from(&mut feed);
        // A message never waits for a later record: once the ring is drained, what is built goes out (a Flush
        // that arrives before its batch's messages, or none at all, delays nothing).
        if done > 0 && feed.is_empty() {
            self.flush_packet(false);
        }
        self.feed = Some(feed);
        done
    }

    /// Works on up to [`FEED_RECORDS_PER_WORK_MAX`] records where they lie in `feed` (no copy through the
    /// stack), each handed back to the core once done.
    fn publish_from(&mut self, feed: &mut ring::Consumer<ToFeed>) -> usize {
        let mut done = 0;
        while done < FEED_RECORDS_PER_WORK_MAX {
            let Some(record) = feed.peek_at(0) else {
                break;
            };
            done += 1;
            match record {
                ToFeed::Message {
                    feed_seq,
                    journal_seq,
                    len,
                    bytes,
                } => self.on_message(*feed_seq, *journal_seq, &bytes[..usize::from(*len)]),
                ToFeed::Flush => self.flush_packet(false),
                ToFeed::Committed(batch) => {
                    // The core's own committed batch: trusted without reading it a second time (by both
                    // readers). A failure only means the reader falls back to scanning it.
                    for reader in [&mut self.reader, &mut self.book_reader] {
                        if let Err(e) = reader.trust_committed(batch) {
                            self.counters.trust_errors += 1;
                            if self.counters.trust_errors == 1 {
                                eprintln!(
                                    "market_data: journal reader could not trust a committed batch: {e}"
                                );
                            }
                        }
                    }
                }
                ToFeed::EndOfSession => {
                    self.flush_packet(false);
                    let now_ns = self.clock.now_ns();
                    self.send_control(self.builder.end_of_session(), now_ns);
                    self.counters.end_of_session_sent += 1;
                    self.end_of_session = true;
                    self.day_open = false;
                }
            }
            feed.skip();
        }
        done
    }

    /// Applies the journaled feed to the snapshot book, reading at most `records_max` journal records and
    /// never past the last released feed message. Returns the records read.
    fn catch_up_book(&mut self, records_max: usize) -> io::Result<usize> {
        let mut records = 0;
        while records < records_max && self.book_journal_seq < self.released_journal_seq {
            let Some(record) = self.book_reader.next_record().map_err(journal_error)? else {
                // Released means committed: the reader has not seen the commit yet (it scans it next time).
                break;
            };
            records += 1;
            self.book_journal_seq = record.sequence;
            if record.kind != KIND_ITCH {
                continue;
            }
            let (feed_seq, message) = next_feed_message(&record, self.book_seq)?;
            if let Err(e) = self.book.apply_bytes(message) {
                self.counters.book_errors += 1;
                eprintln!("market_data: feed sequence {feed_seq} not applied to the snapshot book: {e}");
            }
            self.book_seq = feed_seq;
        }
        Ok(records)
    }

    /// Whether the snapshot book holds every released feed message.
    fn book_is_current(&self) -> bool {
        self.book_journal_seq >= self.released_journal_seq
    }

    fn heartbeat(&mut self, now_ns: u64) -> usize {
        if !self.builder.is_empty() || now_ns.saturating_sub(self.last_packet_ns) < self.heartbeat_interval_ns
        {
            return 0;
        }
        if self.end_of_session {
            self.send_control(self.builder.end_of_session(), now_ns);
            self.counters.end_of_session_sent += 1;
        } else {
            self.send_control(self.builder.heartbeat(), now_ns);
            self.counters.heartbeats_sent += 1;
        }
        1
    }

    fn receive_rerequests(&mut self) -> usize {
        let mut buf = [0u8; moldudp64::HEADER_LEN + 1];
        let mut work = 0;
        while work < RERQ_RECV_PER_WORK_MAX {
            let (n, from) = match self.rerequest_socket.recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors from earlier answers and the like: skip.
                Err(_) => {
                    work += 1;
                    continue;
                }
            };
            work += 1;
            let Ok(request) = moldudp64::Request::decode(&buf[..n]) else {
                self.counters.rerequests_ignored += 1;
                continue;
            };
            if request.session != self.session
                || request.requested_count == 0
                || request.sequence_number == 0
                || request.sequence_number >= self.sent_next
            {
                self.counters.rerequests_ignored += 1;
                continue;
            }
            if self.rerequests.len() >= self.rerequest_queue_max {
                self.counters.rerequests_dropped += 1;
                continue;
            }
            self.counters.rerequests += 1;
            let count = u64::from(request.requested_count).min(self.rerequest_count_max);
            self.rerequests.push_back(Pending {
                to: from,
                next: request.sequence_number,
                end: request.sequence_number.saturating_add(count),
            });
        }
        work
    }

    fn send_rerequest_packet(&mut self, to: SocketAddr) {
        if let Some(packet) = self.rerequest_builder.flush()
            && self.rerequest_socket.send_to(packet, to).is_err()
        {
            self.counters.send_errors += 1;
        }
    }

    /// Answers re-requests from the journal, a bounded slice per call.
    fn serve_rerequests(&mut self, now_ns: u64) -> io::Result<usize> {
        if self.serving.is_none() {
            let Some(mut request) = self.rerequests.pop_front() else {
                // Idle: let the reader's scanner catch up with the journal, a few batches at a time, so that a
                // later seek does not scan a whole day at once.
                let mut batches = 0;
                while batches < RERQ_SCAN_BATCHES_PER_WORK_MAX
                    && now_ns >= self.scan_retry_ns
                    && self.reader.committed_up_to() < self.latest_journal_seq
                {
                    let before = self.reader.committed_up_to();
                    self.reader.seek(before + 1).map_err(journal_error)?;
                    if self.reader.committed_up_to() == before {
                        self.scan_retry_ns = now_ns + SCAN_RETRY_NS;
                        break;
                    }
                    batches += 1;
                }
                return Ok(batches);
            };
            request.end = request.end.min(self.sent_next);
            if request.next >= request.end {
                return Ok(1);
            }
            self.serving = Some(Serving {
                request,
                positioned: false,
            });
        }
        let serving = self.serving.as_mut().expect("set above");
        let to = serving.request.to;
        if !serving.positioned {
            let journal_seq = self.index.lookup(serving.request.next);
            self.reader.seek(journal_seq).map_err(journal_error)?;
            self.rerequest_builder.reset(self.session, serving.request.next);
            serving.positioned = true;
        }
        let mut records = 0;
        let mut finished = false;
        while records < RERQ_RECORDS_PER_WORK_MAX {
            records += 1;
            let Some(record) = self.reader.next_record().map_err(journal_error)? else {
                // Everything asked for was released, so it is committed; nothing more to read is a short answer.
                finished = true;
                break;
            };
            if record.kind != KIND_ITCH {
                continue;
            }
            let Some((feed_seq, message)) = decode_itch(record.payload) else {
                continue;
            };
            let serving = self.serving.as_mut().expect("set above");
            if feed_seq < serving.request.next {
                continue;
            }
            if feed_seq != serving.request.next {
                // Not in the journal where the index said: answer what was found.
                finished = true;
                break;
            }
            match self.rerequest_builder.push(message) {
                Ok(()) => {}
                Err(_) => {
                    if let Some(packet) = self.rerequest_builder.flush()
                        && self.rerequest_socket.send_to(packet, to).is_err()
                    {
                        self.counters.send_errors += 1;
                    }
                    self.rerequest_builder
                        .push(message)
                        .expect("an ITCH message fits an empty packet");
                }
            }
            self.counters.rerequest_messages += 1;
            let serving = self.serving.as_mut().expect("set above");
            serving.request.next += 1;
            if serving.request.next >= serving.request.end {
                finished = true;
                break;
            }
        }
        if finished {
            self.send_rerequest_packet(to);
            self.serving = None;
        }
        Ok(records)
    }

    /// [`MarketData::catch_up_book`], with a journal error said once and counted (the book then stays
    /// where it is; snapshot logins wait).
    fn book_catch_up(&mut self, records_max: usize) -> usize {
        match self.catch_up_book(records_max) {
            Ok(records) => records,
            Err(e) => {
                self.counters.book_errors += 1;
                if self.counters.book_errors == 1 {
                    eprintln!("market_data: snapshot book could not read the journal: {e}");
                }
                0
            }
        }
    }

    fn publish_stats(&mut self, now_ns: u64) {
        self.shared.ring_len[2].store(self.feed().len() as u64, Ordering::Relaxed);
        if now_ns >= self.next_publish_ns {
            self.shared.hand_over_histogram("market_data", &mut self.latency);
            self.next_publish_ns = now_ns + stats::PUBLISH_INTERVAL_NS;
        }
    }
}

impl Agent for MarketData {
    fn name(&self) -> &'static str {
        "market_data"
    }

    fn do_work(&mut self, now_ns: u64) -> usize {
        let published = self.publish();
        let mut work = published + self.heartbeat(now_ns);
        if now_ns >= self.next_io_poll_ns {
            self.next_io_poll_ns = now_ns + IO_POLL_INTERVAL_NS;
            work += self.receive_rerequests();
            if self.snapshot.awaits_login() {
                work += self.book_catch_up(BOOK_CATCH_UP_RECORDS_PER_POLL);
            }
            let current = self.book_is_current();
            work += self
                .snapshot
                .do_work(now_ns, &self.book, self.book_seq, current, self.day_open);
        }
        if published > 0 {
            self.last_publish_ns = now_ns;
        } else if now_ns.saturating_sub(self.last_publish_ns) >= BOOK_IDLE_AFTER_NS {
            // Background work of an idle pipeline: not counted as work, so that the runner's busy time
            // (admin `pipeline busy`, the benchmarks' cost per request) stays the cost of what was asked.
            self.book_catch_up(BOOK_IDLE_RECORDS_PER_WORK);
        }
        match self.serve_rerequests(now_ns) {
            Ok(n) => work += n,
            Err(e) => {
                eprintln!("market_data: re-request from the journal failed: {e}");
                self.serving = None;
            }
        }
        if !self.feed_closed && self.lifecycle.core_closed.load(Ordering::Acquire) && self.feed().is_empty() {
            self.flush_packet(false);
            self.feed_closed = true;
            self.lifecycle.feed_closed.store(true, Ordering::Release);
        }
        self.publish_stats(now_ns);
        work
    }

    fn on_close(&mut self) {
        self.flush_packet(false);
        self.shared.hand_over_histogram("market_data", &mut self.latency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_index_lands_at_or_before_its_target_and_stays_bounded() {
        let mut index = FeedIndex::new(100);
        assert_eq!(index.lookup(1), 100);
        // Feed message f is journal record 100 + 3f.
        let total = (FEED_INDEX_ENTRIES_MAX as u64) * FEED_INDEX_STRIDE_MIN * 3;
        for f in 1..=total {
            index.note(f, 100 + 3 * f);
        }
        assert!(index.len() <= FEED_INDEX_ENTRIES_MAX);
        assert!(index.stride > FEED_INDEX_STRIDE_MIN, "thinned at least once");
        for target in [1, 2, 63, 64, 65, 1000, total / 2, total - 1, total] {
            let journal_seq = index.lookup(target);
            assert!(journal_seq <= 100 + 3 * target, "{target}");
            // Never further back than one stride (plus the first entry's offset).
            assert!(100 + 3 * target - journal_seq <= 3 * index.stride, "{target}");
        }
    }
}
