//! The admin endpoint: line-delimited JSON over TCP on its own loopback port (`admin.listen`).
//!
//! One request per line ([`AdminRequest`]), exactly one reply per line ([`AdminReply`]). Reads (status,
//! sessions, latency) are answered here from [`Shared`]; anything that changes state or reads the
//! engine goes to the core as an [`AdminJob`] and is answered once its journal records are released.
//! It runs on its own plain threads, never on a pipeline thread; a bad line (not JSON, not UTF-8) is
//! answered with an `error` reply and the connection stays open. At most [`CONNECTIONS_MAX`] connections:
//! when they are all open, a new one takes the place of the one idle longest (if idle for at least
//! [`EVICT_IDLE_MIN`]), so connections that never send cannot lock the operator out.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bourse_protocol::admin::{
    ADMIN_LINE_BYTES_MAX, AdminErrorCode, AdminReply, AdminRequest, RingDepth, StatusReply, SyncPolicyName,
    ThreadingModeName,
};

use crate::core::AdminJob;
use crate::msg::Lifecycle;
use crate::stats::Shared;

/// Concurrent admin connections. One more takes the place of the one idle longest, or is closed at once
/// when every one has sent a request within [`EVICT_IDLE_MIN`].
pub const CONNECTIONS_MAX: usize = 16;
/// How long a connection must have been idle (no request) to give its place to a new one.
pub const EVICT_IDLE_MIN: Duration = Duration::from_secs(1);
/// How long a request waits for the core before the reply is `unavailable`.
pub const CORE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `checkpoint` waits: the checkpointer may first have to catch up with a flood (below the
/// CLI's 30 s reply bound, so that the CLI hears why).
pub const CHECKPOINT_TIMEOUT: Duration = Duration::from_secs(25);

/// The counters at the last rate sample, and the rates then computed (status reports per-second rates
/// over the last second or more).
struct Rate {
    at: Instant,
    events_total: u64,
    busy_ns: u64,
    events_per_s: u64,
    busy_ns_per_s: u64,
}

/// What the admin threads share.
pub struct AdminContext {
    /// Jobs for the core.
    pub jobs: Mutex<Sender<AdminJob>>,
    /// Published numbers.
    pub shared: Arc<Shared>,
    /// Shutdown handshake.
    pub lifecycle: Arc<Lifecycle>,
    /// Start of the daemon.
    pub started: Instant,
    /// Sync policy, for status.
    pub sync_policy: SyncPolicyName,
    /// Threading mode, for status.
    pub threading_mode: ThreadingModeName,
    /// Ring capacities: commands, replies, market data.
    pub ring_capacity: [u64; 3],
    /// First record in the journal directory (fixed after start-up, which archives).
    pub journal_first_sequence: u64,
    rate: Mutex<Rate>,
    connections: Mutex<Vec<Connection>>,
    next_connection: AtomicU64,
}

/// An open admin connection, as the acceptor sees it.
struct Connection {
    id: u64,
    /// A handle on the socket, to shut it down when the connection is evicted.
    stream: TcpStream,
    /// When it was accepted or last sent a request, or finished answering one.
    active: Instant,
    /// A request of it is being answered (it may wait long for the core: never evicted then).
    busy: bool,
}

impl AdminContext {
    /// A context.
    pub fn new(
        jobs: Sender<AdminJob>,
        shared: Arc<Shared>,
        lifecycle: Arc<Lifecycle>,
        sync_policy: SyncPolicyName,
        threading_mode: ThreadingModeName,
        ring_capacity: [u64; 3],
        journal_first_sequence: u64,
    ) -> AdminContext {
        AdminContext {
            jobs: Mutex::new(jobs),
            shared,
            lifecycle,
            started: Instant::now(),
            sync_policy,
            threading_mode,
            ring_capacity,
            journal_first_sequence,
            rate: Mutex::new(Rate {
                at: Instant::now(),
                events_total: 0,
                busy_ns: 0,
                events_per_s: 0,
                busy_ns_per_s: 0,
            }),
            connections: Mutex::new(Vec::with_capacity(CONNECTIONS_MAX)),
            next_connection: AtomicU64::new(0),
        }
    }

    /// Admits `stream` as a connection (its id), evicting the connection idle longest when all
    /// [`CONNECTIONS_MAX`] are open; `None` when every open one was active within [`EVICT_IDLE_MIN`].
    fn admit(&self, stream: &TcpStream) -> Option<u64> {
        let handle = stream.try_clone().ok()?;
        let mut open = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if open.len() >= CONNECTIONS_MAX {
            let (index, idlest) = open
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.busy)
                .min_by_key(|(_, c)| c.active)?;
            if idlest.active.elapsed() < EVICT_IDLE_MIN {
                return None;
            }
            // Its thread's read ends (EOF) and it leaves; its place is taken now.
            let _ = idlest.stream.shutdown(Shutdown::Both);
            open.swap_remove(index);
        }
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        open.push(Connection {
            id,
            stream: handle,
            active: Instant::now(),
            busy: false,
        });
        Some(id)
    }

    /// Connection `id` starts (`busy`) or has finished answering a request.
    fn touch(&self, id: u64, busy: bool) {
        let mut open = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = open.iter_mut().find(|c| c.id == id) {
            c.active = Instant::now();
            c.busy = busy;
        }
    }

    /// Connection `id` ended (or was evicted already).
    fn leave(&self, id: u64) {
        let mut open = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|c| c.id != id);
    }

    fn status(&self) -> AdminReply {
        let s = &self.shared;
        let events_total = Shared::get(&s.events_total);
        let busy_ns = s.busy.busy_ns();
        let (events_per_s, busy_ns_per_s) = {
            let mut rate = self.rate.lock().unwrap_or_else(|e| e.into_inner());
            let elapsed = rate.at.elapsed();
            if elapsed >= Duration::from_secs(1) {
                let seconds = elapsed.as_secs_f64();
                *rate = Rate {
                    at: Instant::now(),
                    events_total,
                    busy_ns,
                    events_per_s: (events_total.saturating_sub(rate.events_total) as f64 / seconds) as u64,
                    busy_ns_per_s: (busy_ns.saturating_sub(rate.busy_ns) as f64 / seconds) as u64,
                };
            }
            (rate.events_per_s, rate.busy_ns_per_s)
        };
        let names = ["commands", "replies", "market_data"];
        let (checkpointer_sequence, checkpoint_sequence, checkpointer_failed) = s.checkpointer();
        AdminReply::Status(StatusReply {
            uptime_ms: self.started.elapsed().as_millis() as u64,
            sessions: Shared::get(&s.sessions_logged_in),
            orders: Shared::get(&s.orders),
            events_total,
            events_per_s,
            journal_sequence: Shared::get(&s.journal_sequence),
            rings: names
                .iter()
                .enumerate()
                .map(|(i, n)| RingDepth {
                    ring: (*n).to_owned(),
                    len: Shared::get(&s.ring_len[i]),
                    capacity: self.ring_capacity[i],
                })
                .collect(),
            sync_policy: self.sync_policy,
            threading_mode: self.threading_mode,
            pipeline_busy_ns: busy_ns,
            pipeline_busy_ns_per_s: busy_ns_per_s,
            checkpoint_sequence,
            checkpointer_sequence,
            checkpointer_failed,
            journal_first_sequence: self.journal_first_sequence,
        })
    }

    /// Answers one request line.
    pub fn answer(&self, line: &str) -> AdminReply {
        let request: AdminRequest = match serde_json::from_str(line) {
            Ok(r) => r,
            Err(e) => {
                return AdminReply::Error {
                    code: AdminErrorCode::BadRequest,
                    message: format!("not an admin request: {e}"),
                };
            }
        };
        match request {
            AdminRequest::Status => self.status(),
            AdminRequest::Sessions => AdminReply::Sessions {
                sessions: self.shared.sessions(Duration::from_secs(1)),
            },
            AdminRequest::Latency => AdminReply::Latency {
                stages: self.shared.latency(),
            },
            AdminRequest::Shutdown => {
                self.lifecycle.shutdown.store(true, Ordering::Release);
                AdminReply::Done {
                    request: "shutdown".into(),
                    sequence: None,
                    message: "draining, checkpointing and exiting".into(),
                }
            }
            request => {
                let checkpoint = matches!(request, AdminRequest::Checkpoint);
                let (tx, rx) = mpsc::channel();
                let sent = self
                    .jobs
                    .lock()
                    .map(|jobs| jobs.send(AdminJob { request, reply: tx }).is_ok())
                    .unwrap_or(false);
                if !sent {
                    return AdminReply::Error {
                        code: AdminErrorCode::Unavailable,
                        message: "the core is not running".into(),
                    };
                }
                let (wait, late) = if checkpoint {
                    (
                        CHECKPOINT_TIMEOUT,
                        "the checkpoint is not written yet (the checkpointer is catching up with the \
                         journal; it goes on, and `status` shows the last checkpoint once it is)",
                    )
                } else {
                    (CORE_TIMEOUT, "the core did not answer in time")
                };
                rx.recv_timeout(wait).unwrap_or_else(|_| AdminReply::Error {
                    code: AdminErrorCode::Unavailable,
                    message: late.into(),
                })
            }
        }
    }
}

/// Serves `listener` on a background thread (one thread per connection, at most [`CONNECTIONS_MAX`], see
/// the module header).
///
/// # Errors
/// If the thread cannot be started.
pub fn spawn(
    listener: TcpListener,
    context: Arc<AdminContext>,
    helper_cores: Vec<usize>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (placed, wait_placed) = std::sync::mpsc::sync_channel::<()>(1);
    let thread = std::thread::Builder::new()
        .name("bourse-admin".into())
        .spawn(move || {
            // A helper thread: on the helper cores (its connection threads inherit them).
            crate::agent::pin_helper_thread("admin thread", &helper_cores);
            let _ = placed.send(());
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let Some(id) = context.admit(&stream) else {
                    drop(stream);
                    continue;
                };
                let ctx = Arc::clone(&context);
                let spawned = std::thread::Builder::new()
                    .name("bourse-admin-conn".into())
                    .spawn(move || {
                        serve(stream, id, &ctx);
                        ctx.leave(id);
                    });
                if spawned.is_err() {
                    context.leave(id);
                }
            }
        })?;
    // Returns once the thread runs named and placed (the daemon reports ready after this).
    let _ = wait_placed.recv();
    Ok(thread)
}

fn serve(stream: TcpStream, id: u64, context: &AdminContext) {
    let _ = stream.set_nodelay(true);
    let Ok(write_half) = stream.try_clone() else {
        return;
    };
    let mut writer = std::io::BufWriter::new(write_half);
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        // At most ADMIN_LINE_BYTES_MAX + 1 bytes per line: a longer one is refused and the connection
        // closed (its rest cannot be told apart from the next request).
        match (&mut reader)
            .take(ADMIN_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        context.touch(id, true);
        let too_long = line.len() > ADMIN_LINE_BYTES_MAX && line.last() != Some(&b'\n');
        let reply = if too_long {
            let reply = AdminReply::Error {
                code: AdminErrorCode::BadRequest,
                message: format!("request line over {ADMIN_LINE_BYTES_MAX} bytes"),
            };
            if let Ok(text) = serde_json::to_string(&reply) {
                let _ = writer.write_all(text.as_bytes());
                let _ = writer.write_all(b"\n");
                let _ = writer.flush();
            }
            return;
        } else {
            match std::str::from_utf8(&line) {
                Ok(text) if text.trim().is_empty() => {
                    context.touch(id, false);
                    continue;
                }
                Ok(text) => context.answer(text.trim()),
                Err(_) => AdminReply::Error {
                    code: AdminErrorCode::BadRequest,
                    message: "request line is not UTF-8".into(),
                },
            }
        };
        let Ok(text) = serde_json::to_string(&reply) else {
            return;
        };
        if writer.write_all(text.as_bytes()).is_err()
            || writer.write_all(b"\n").is_err()
            || writer.flush().is_err()
        {
            return;
        }
        context.touch(id, false);
    }
}
