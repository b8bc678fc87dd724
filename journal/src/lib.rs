//! The journal of bourse: an append-only log of CRC32C-framed records in mmap segments, with group
//! commit, checkpoints and recovery.
//!
//! It is payload-agnostic: it stores bytes; `bourse-book` owns what they mean.
//! See `docs/journal.md` for the byte tables and the durability contract.
