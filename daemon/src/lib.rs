//! The pieces of `boursed`, the exchange daemon: the only crate with threads, sockets, clocks and pinning.
//!
//! Built so far: [`ring`], the SPSC ring between stages. The pipeline itself is issue 5.

pub mod ring;
