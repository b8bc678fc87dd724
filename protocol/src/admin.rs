//! Admin endpoint messages: line-delimited JSON requests and replies (types only; serde derives).
//!
//! The admin endpoint is a loopback TCP port of `boursed` for operators and the `bourse` CLI, not a client
//! interface. Each request is one JSON object on one line (at most [`ADMIN_LINE_BYTES_MAX`] bytes, `\n`
//! terminated); each is answered by exactly one reply line, in order. The shapes are documented with
//! examples in `docs/OPERATIONS.md` "Admin protocol".
//!
//! # Shape
//! Both [`AdminRequest`] and [`AdminReply`] are internally tagged: `{"type": "<snake_case variant>", ...
//! fields}`. Unknown types, and unknown fields of requests that have fields, are decode errors (the daemon answers them with
//! [`AdminReply::Error`] and [`AdminErrorCode::BadRequest`]). Replies are read leniently: a field a later
//! daemon adds is ignored, so an operator's older `bourse` still reads `status` and the rest (a reply
//! type it does not know is still an error). Names (`user`, `symbol`, `firm`) are plain
//! strings as an operator types them; the daemon checks them against the protocol field types and answers
//! `unknown_*` errors. Extra fields on a request without fields (`{"type":"status","x":1}`) are ignored:
//! serde's `deny_unknown_fields` does not reach unit variants.
//!
//! # Units
//! Prices are OUCH price units (1/10000 dollar), quantities shares, times carry their unit in the name.
//!
//! This crate does not encode or decode JSON itself (no `serde_json` dependency): the daemon and the CLI do.

use serde::{Deserialize, Serialize};

/// Largest admin request or reply line, in bytes, newline included. Longer requests are refused.
pub const ADMIN_LINE_BYTES_MAX: usize = 1 << 20;
/// Largest `levels` a [`AdminRequest::Depth`] may ask for.
pub const DEPTH_LEVELS_MAX: u32 = 1000;

/// A request to the admin endpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AdminRequest {
    /// Daemon status ([`AdminReply::Status`]).
    Status,
    /// Connected order-entry sessions ([`AdminReply::Sessions`]).
    Sessions,
    /// Force-logout every session of a login.
    Logout {
        /// SoupBinTCP username.
        user: String,
    },
    /// Log out and refuse further logins of a user until enabled.
    Disable {
        /// SoupBinTCP username.
        user: String,
    },
    /// Allow logins of a disabled user again.
    Enable {
        /// SoupBinTCP username.
        user: String,
    },
    /// Halt trading in an instrument.
    Halt {
        /// Instrument symbol.
        symbol: String,
    },
    /// Resume trading in a halted instrument.
    Resume {
        /// Instrument symbol.
        symbol: String,
    },
    /// Kill switch: cancel every order of a firm and block new ones until unkilled.
    Kill {
        /// Firm (4 characters at most).
        firm: String,
    },
    /// Lift a firm's kill switch.
    Unkill {
        /// Firm.
        firm: String,
    },
    /// Bust a trade: Broken Trade to both sides and on the feed.
    Bust {
        /// The trade's match number.
        match_number: u64,
    },
    /// Write a checkpoint now.
    Checkpoint,
    /// Run the end of the trading day.
    EndOfDay,
    /// Drain, checkpoint and exit (as SIGTERM).
    Shutdown,
    /// The top `levels` price levels of each side of a book ([`AdminReply::Depth`]).
    Depth {
        /// Instrument symbol.
        symbol: String,
        /// Levels per side, 1 to [`DEPTH_LEVELS_MAX`].
        levels: u32,
    },
    /// Latency percentiles per stage ([`AdminReply::Latency`]).
    Latency,
}

/// A reply of the admin endpoint; exactly one per request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AdminReply {
    /// Answer to [`AdminRequest::Status`].
    Status(StatusReply),
    /// Answer to [`AdminRequest::Sessions`].
    Sessions {
        /// One entry per connected session.
        sessions: Vec<SessionInfo>,
    },
    /// Answer to [`AdminRequest::Depth`].
    Depth(DepthReply),
    /// Answer to [`AdminRequest::Latency`].
    Latency {
        /// One entry per stage, plus `wire_to_wire`.
        stages: Vec<StageLatency>,
    },
    /// An action request was carried out (and journaled where it changes state).
    Done {
        /// The request's `type` (`halt`, `kill`, `checkpoint`, ...).
        request: String,
        /// Journal sequence number of the action's record, when it has one.
        sequence: Option<u64>,
        /// Human-readable detail ("12 orders canceled").
        message: String,
    },
    /// The request failed; nothing was changed.
    Error {
        /// Machine-readable reason.
        code: AdminErrorCode,
        /// Human-readable detail.
        message: String,
    },
}

/// Why an admin request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminErrorCode {
    /// Not JSON, an unknown `type`, a missing or unknown field, or a line over the limit.
    BadRequest,
    /// No such login.
    UnknownUser,
    /// No such instrument.
    UnknownSymbol,
    /// No such firm.
    UnknownFirm,
    /// No trade of the day with that match number to bust.
    UnknownMatch,
    /// The target is already in the requested state (halted, killed, disabled, ...).
    AlreadyInState,
    /// A value is out of range (`levels` above the maximum, ...).
    OutOfRange,
    /// The daemon is shutting down or at end of day and refuses the action.
    Unavailable,
    /// An internal failure (journal error); the daemon logs the detail.
    Internal,
}

/// Journal sync policy, as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPolicyName {
    /// Never sync.
    None,
    /// One sync per batch.
    Batch,
    /// One sync every N batches.
    EveryBatches(u32),
}

/// Threading mode, as run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ThreadingModeName {
    /// Stages on one thread.
    Shared,
    /// One pinned thread per stage.
    Pinned,
}

/// Fill level of one ring between stages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingDepth {
    /// Ring name (`commands`, `outcomes`, `replies`, `market_data`).
    pub ring: String,
    /// Records in it now.
    pub len: u64,
    /// Its capacity in records.
    pub capacity: u64,
}

/// Payload of [`AdminReply::Status`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// Milliseconds since the daemon started.
    pub uptime_ms: u64,
    /// Logged-in order-entry sessions.
    pub sessions: u64,
    /// Live orders in the engine.
    pub orders: u64,
    /// Events journaled since start.
    pub events_total: u64,
    /// Events journaled per second over the last second.
    pub events_per_s: u64,
    /// Sequence number of the last journaled record.
    pub journal_sequence: u64,
    /// Fill of every ring.
    pub rings: Vec<RingDepth>,
    /// Journal sync policy.
    pub sync_policy: SyncPolicyName,
    /// Threading mode.
    pub threading_mode: ThreadingModeName,
    /// Nanoseconds the pipeline threads spent in rounds that did work, since start (all threads
    /// together); absent from older daemons.
    #[serde(default)]
    pub pipeline_busy_ns: u64,
    /// The same over the last second, per second: 1,000,000,000 is one thread busy all the time.
    #[serde(default)]
    pub pipeline_busy_ns_per_s: u64,
    /// Journal sequence of the newest checkpoint written since start (0: none yet); absent from older
    /// daemons.
    #[serde(default)]
    pub checkpoint_sequence: u64,
    /// Journal sequence the checkpointer's replica has re-run up to (it follows the journal only while a
    /// checkpoint is due, so between checkpoints it stays where the last one was).
    #[serde(default)]
    pub checkpointer_sequence: u64,
    /// The checkpointer stopped (its replica disagreed with the journal, or the journal could not be
    /// read): no checkpoint is written until a restart; stderr says why.
    #[serde(default)]
    pub checkpointer_failed: bool,
    /// Sequence of the first record in the journal directory: above 1 once start-up archived the
    /// segments before it (0 from daemons before 2026-11-28).
    #[serde(default)]
    pub journal_first_sequence: u64,
}

/// One connected order-entry session, in [`AdminReply::Sessions`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// SoupBinTCP username (`None` before login).
    pub user: Option<String>,
    /// Peer address (`127.0.0.1:51234`).
    pub peer: String,
    /// Next outbound sequence number of the session.
    pub sequence_next: u64,
    /// Bytes waiting in its send queue.
    pub send_queue_bytes: u64,
    /// OUCH messages received.
    pub messages_in: u64,
    /// Sequenced messages sent.
    pub messages_out: u64,
    /// Milliseconds since it connected.
    pub connected_ms: u64,
}

/// One price level in [`DepthReply`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthLevel {
    /// Price, OUCH price units.
    pub price: u32,
    /// Open shares at the level.
    pub shares: u64,
    /// Orders at the level.
    pub orders: u32,
}

/// Payload of [`AdminReply::Depth`]: best level first on each side.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DepthReply {
    /// Instrument symbol.
    pub symbol: String,
    /// Whether trading is halted.
    pub halted: bool,
    /// The last MoldUDP64 sequence number the core had released when it read the book: a feed receiver
    /// that has applied exactly the messages up to it holds the same book.
    pub feed_sequence: u64,
    /// Bids, highest price first.
    pub bids: Vec<DepthLevel>,
    /// Asks, lowest price first.
    pub asks: Vec<DepthLevel>,
}

/// Latency distribution of one stage, in [`AdminReply::Latency`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageLatency {
    /// Stage name (`ingress`, `sequencer`, `matching`, `journal`, `market_data`, `wire_to_wire`).
    pub stage: String,
    /// Samples recorded.
    pub count: u64,
    /// Median, nanoseconds.
    pub p50_ns: u64,
    /// 90th percentile, nanoseconds.
    pub p90_ns: u64,
    /// 99th percentile, nanoseconds.
    pub p99_ns: u64,
    /// 99.9th percentile, nanoseconds.
    pub p999_ns: u64,
    /// Largest sample, nanoseconds.
    pub max_ns: u64,
    /// The percentile distribution (HdrHistogram's quantile iteration, 5 ticks per half distance), for
    /// plots: `quantile_ppm` is the quantile in parts per million.
    pub points: Vec<LatencyPoint>,
}

/// One point of a latency distribution in [`StageLatency`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LatencyPoint {
    /// Quantile in parts per million (990000 = p99).
    pub quantile_ppm: u32,
    /// Latency at that quantile, nanoseconds.
    pub value_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requests() -> Vec<AdminRequest> {
        vec![
            AdminRequest::Status,
            AdminRequest::Sessions,
            AdminRequest::Logout { user: "alice".into() },
            AdminRequest::Disable { user: "alice".into() },
            AdminRequest::Enable { user: "alice".into() },
            AdminRequest::Halt {
                symbol: "AAPL".into(),
            },
            AdminRequest::Resume {
                symbol: "AAPL".into(),
            },
            AdminRequest::Kill { firm: "ALFA".into() },
            AdminRequest::Unkill { firm: "ALFA".into() },
            AdminRequest::Bust { match_number: 42 },
            AdminRequest::Checkpoint,
            AdminRequest::EndOfDay,
            AdminRequest::Shutdown,
            AdminRequest::Depth {
                symbol: "MSFT".into(),
                levels: 5,
            },
            AdminRequest::Latency,
        ]
    }

    fn replies() -> Vec<AdminReply> {
        vec![
            AdminReply::Status(StatusReply {
                uptime_ms: 1_500,
                sessions: 2,
                orders: 10,
                events_total: 1_000,
                events_per_s: 250,
                journal_sequence: 1_020,
                rings: vec![RingDepth {
                    ring: "commands".into(),
                    len: 3,
                    capacity: 65_536,
                }],
                sync_policy: SyncPolicyName::EveryBatches(8),
                threading_mode: ThreadingModeName::Shared,
                pipeline_busy_ns: 3_000_000_000,
                pipeline_busy_ns_per_s: 250_000_000,
                checkpoint_sequence: 900,
                checkpointer_sequence: 1_020,
                checkpointer_failed: false,
                journal_first_sequence: 1,
            }),
            AdminReply::Sessions {
                sessions: vec![
                    SessionInfo {
                        user: Some("alice".into()),
                        peer: "127.0.0.1:51234".into(),
                        sequence_next: 7,
                        send_queue_bytes: 0,
                        messages_in: 5,
                        messages_out: 6,
                        connected_ms: 900,
                    },
                    SessionInfo {
                        user: None,
                        peer: "127.0.0.1:51235".into(),
                        sequence_next: 1,
                        send_queue_bytes: 0,
                        messages_in: 0,
                        messages_out: 0,
                        connected_ms: 3,
                    },
                ],
            },
            AdminReply::Depth(DepthReply {
                symbol: "AAPL".into(),
                halted: false,
                feed_sequence: 12,
                bids: vec![DepthLevel {
                    price: 1_899_900,
                    shares: 300,
                    orders: 2,
                }],
                asks: vec![],
            }),
            AdminReply::Latency {
                stages: vec![StageLatency {
                    stage: "wire_to_wire".into(),
                    count: 100,
                    p50_ns: 9_000,
                    p90_ns: 12_000,
                    p99_ns: 20_000,
                    p999_ns: 40_000,
                    max_ns: 80_000,
                    points: vec![LatencyPoint {
                        quantile_ppm: 500_000,
                        value_ns: 9_000,
                    }],
                }],
            },
            AdminReply::Done {
                request: "kill".into(),
                sequence: Some(77),
                message: "3 orders canceled".into(),
            },
            AdminReply::Done {
                request: "checkpoint".into(),
                sequence: None,
                message: "checkpoint at 1020".into(),
            },
            AdminReply::Error {
                code: AdminErrorCode::UnknownSymbol,
                message: "no instrument ZZZZ".into(),
            },
        ]
    }

    #[test]
    fn every_request_round_trips_on_one_line() {
        for request in requests() {
            let line = serde_json::to_string(&request).unwrap();
            assert!(!line.contains('\n') && line.len() < ADMIN_LINE_BYTES_MAX);
            let back: AdminRequest = serde_json::from_str(&line).unwrap();
            assert_eq!(back, request, "{line}");
        }
    }

    #[test]
    fn every_reply_round_trips_on_one_line() {
        for reply in replies() {
            let line = serde_json::to_string(&reply).unwrap();
            assert!(!line.contains('\n'));
            let back: AdminReply = serde_json::from_str(&line).unwrap();
            assert_eq!(back, reply, "{line}");
        }
        for code in [
            AdminErrorCode::BadRequest,
            AdminErrorCode::UnknownUser,
            AdminErrorCode::UnknownFirm,
            AdminErrorCode::UnknownMatch,
            AdminErrorCode::AlreadyInState,
            AdminErrorCode::OutOfRange,
            AdminErrorCode::Unavailable,
            AdminErrorCode::Internal,
        ] {
            let reply = AdminReply::Error {
                code,
                message: String::new(),
            };
            let back: AdminReply = serde_json::from_str(&serde_json::to_string(&reply).unwrap()).unwrap();
            assert_eq!(back, reply);
        }
    }

    /// The wire shapes documented in docs/OPERATIONS.md; a change here is a protocol change.
    #[test]
    fn golden_json() {
        let request_cases = [
            (AdminRequest::Status, r#"{"type":"status"}"#),
            (AdminRequest::EndOfDay, r#"{"type":"end_of_day"}"#),
            (
                AdminRequest::Halt {
                    symbol: "AAPL".into(),
                },
                r#"{"type":"halt","symbol":"AAPL"}"#,
            ),
            (
                AdminRequest::Bust { match_number: 42 },
                r#"{"type":"bust","match_number":42}"#,
            ),
            (
                AdminRequest::Depth {
                    symbol: "MSFT".into(),
                    levels: 5,
                },
                r#"{"type":"depth","symbol":"MSFT","levels":5}"#,
            ),
        ];
        // A status from a daemon older than the busy, checkpointer and journal-start fields still decodes
        // (they read as 0).
        let older = r#"{"type":"status","uptime_ms":1,"sessions":0,"orders":0,"events_total":0,"events_per_s":0,"journal_sequence":0,"rings":[],"sync_policy":"none","threading_mode":"shared"}"#;
        match serde_json::from_str::<AdminReply>(older).unwrap() {
            AdminReply::Status(status) => {
                assert_eq!((status.pipeline_busy_ns, status.pipeline_busy_ns_per_s), (0, 0));
                assert_eq!((status.checkpoint_sequence, status.checkpointer_sequence), (0, 0));
                assert!(!status.checkpointer_failed);
                assert_eq!(status.journal_first_sequence, 0);
            }
            other => panic!("{other:?}"),
        }
        for (request, golden) in request_cases {
            assert_eq!(serde_json::to_string(&request).unwrap(), golden);
            assert_eq!(serde_json::from_str::<AdminRequest>(golden).unwrap(), request);
        }
        let replies = replies();
        let reply_cases = [
            (
                &replies[0],
                r#"{"type":"status","uptime_ms":1500,"sessions":2,"orders":10,"events_total":1000,"events_per_s":250,"journal_sequence":1020,"rings":[{"ring":"commands","len":3,"capacity":65536}],"sync_policy":{"every_batches":8},"threading_mode":"shared","pipeline_busy_ns":3000000000,"pipeline_busy_ns_per_s":250000000,"checkpoint_sequence":900,"checkpointer_sequence":1020,"checkpointer_failed":false,"journal_first_sequence":1}"#,
            ),
            (
                &replies[2],
                r#"{"type":"depth","symbol":"AAPL","halted":false,"feed_sequence":12,"bids":[{"price":1899900,"shares":300,"orders":2}],"asks":[]}"#,
            ),
            (
                &replies[3],
                r#"{"type":"latency","stages":[{"stage":"wire_to_wire","count":100,"p50_ns":9000,"p90_ns":12000,"p99_ns":20000,"p999_ns":40000,"max_ns":80000,"points":[{"quantile_ppm":500000,"value_ns":9000}]}]}"#,
            ),
            (
                &replies[4],
                r#"{"type":"done","request":"kill","sequence":77,"message":"3 orders canceled"}"#,
            ),
            (
                &replies[6],
                r#"{"type":"error","code":"unknown_symbol","message":"no instrument ZZZZ"}"#,
            ),
        ];
        for (reply, golden) in reply_cases {
            assert_eq!(serde_json::to_string(reply).unwrap(), golden);
            assert_eq!(&serde_json::from_str::<AdminReply>(golden).unwrap(), reply);
        }
        let batch: AdminReply = serde_json::from_str(
            r#"{"type":"status","uptime_ms":0,"sessions":0,"orders":0,"events_total":0,"events_per_s":0,"journal_sequence":0,"rings":[],"sync_policy":"batch","threading_mode":"pinned"}"#,
        )
        .unwrap();
        let AdminReply::Status(status) = batch else {
            panic!("not a status: {batch:?}")
        };
        assert_eq!(status.sync_policy, SyncPolicyName::Batch);
        assert_eq!(status.threading_mode, ThreadingModeName::Pinned);
    }

    #[test]
    fn malformed_requests_are_errors_not_panics() {
        for bad in [
            "",
            "{",
            "null",
            "42",
            "[]",
            "{}",
            r#"{"type":"launch_rockets"}"#,
            r#"{"type":"STATUS"}"#,
            r#"{"type":"halt"}"#,
            r#"{"type":"halt","symbol":7}"#,
            r#"{"type":"halt","symbol":"AAPL","extra":1}"#,
            r#"{"type":"bust","match_number":-1}"#,
            r#"{"type":"bust","match_number":"42"}"#,
            r#"{"type":"depth","symbol":"AAPL","levels":99999999999}"#,
            "\u{0}\u{1}garbage",
        ] {
            assert!(
                serde_json::from_str::<AdminRequest>(bad).is_err(),
                "{bad:?} decoded"
            );
        }
        // serde cannot deny unknown fields of a unit variant: they are ignored (documented).
        assert_eq!(
            serde_json::from_str::<AdminRequest>(r#"{"type":"status","extra":1}"#).unwrap(),
            AdminRequest::Status
        );
        for bad in [
            r#"{"type":"error","code":"on_fire","message":""}"#,
            r#"{"type":"a_reply_from_a_later_daemon"}"#,
            r#"{"type":"sessions"}"#,
        ] {
            assert!(
                serde_json::from_str::<AdminReply>(bad).is_err(),
                "{bad:?} decoded"
            );
        }
    }

    #[test]
    fn fields_a_later_daemon_adds_to_a_reply_are_ignored() {
        // At the top level and nested.
        let sample = replies().remove(0);
        assert!(matches!(sample, AdminReply::Status(_)));
        let mut status = serde_json::to_value(&sample).unwrap();
        status["added_later"] = serde_json::json!(7);
        status["rings"][0]["added_later"] = serde_json::json!("x");
        assert_eq!(serde_json::from_value::<AdminReply>(status).unwrap(), sample);
        let done = r#"{"type":"done","request":"halt","sequence":9,"message":"","added_later":[1]}"#;
        assert!(matches!(
            serde_json::from_str::<AdminReply>(done).unwrap(),
            AdminReply::Done {
                sequence: Some(9),
                ..
            }
        ));
    }
}
