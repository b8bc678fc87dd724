//! bourse-tools: the client side of the bourse exchange, as a library the `bourse` binary, the benchmark
//! harness and the integration tests share.
//!
//! - [`client`]: a blocking SoupBinTCP 4.0 + OUCH 4.2 order-entry client (also used for snapshot sessions).
//! - [`feed`]: a MoldUDP64 / ITCH 5.0 market-data receiver (A/B arbitration, gap re-requests, late join
//!   through the snapshot) and the `bourse md` command.
//! - [`admin`]: the admin endpoint client (line-delimited JSON), the ports file, and the admin commands of
//!   the CLI (`bourse status`, `depth`, `latency`, ...).
//! - [`load`]: the load generator (N market-maker sessions, open loop, order-to-ack latency from the
//!   scheduled send time), a scripted SoupBinTCP echo server for baselines and tests, and helpers that
//!   write a `boursed` config and start `boursed` on free ports.
//! - [`hgrm`]: the HdrHistogram percentile distribution text (`.hgrm`), written and parsed.
//! - [`plot`]: SVG percentile plots.
//!
//! This crate never depends on `bourse-daemon`: it speaks to `boursed` only through the wire protocols of
//! `bourse-protocol`, as any other client would. Every socket here talks to 127.0.0.1 (or the multicast
//! groups on the loopback interface); every loop is bounded by a timeout or a count.

#![forbid(unsafe_code)]

pub mod admin;
pub mod client;
pub mod demo;
pub mod feed;
pub mod hgrm;
pub mod load;
pub mod plot;
