//! A trade read back from the journal by its match number, for admin `bust`.
//!
//! The engine keeps no copy of past trades (see `bourse_book::Command::BustTrade`): the journal already
//! holds every Executed event record, with both parties as the fill left them. Each day starts a fresh
//! engine whose match numbers start again at 1, so the search is over the day's records only (from its
//! Start of Day record on), where match numbers and journal sequences grow together: it halves the day's
//! segments, each probe reading from a segment's first record of the day to the first Executed record at
//! or after it, and then walks the one segment that can hold the trade. A bust reads at most one
//! segment's records plus one short read per halving, through its own read-only mapping, and only
//! records already committed (trusted up to the writer's last committed batch, not checked again).

use std::path::Path;

use bourse_book::Event;
use bourse_book::event::Executed;
use bourse_journal::{CommittedBatch, JournalError, MmapStorage, Reader, Storage};

/// Journal kind of the book's Executed event records: the daemon journals the events it keeps under
/// their record kind byte (`Machine::command`, `machine::journals_event`), Executed always.
const KIND_EXECUTED: u16 = bourse_book::record::KIND_EXECUTED as u16;

/// The Executed event of `match_number` among the day's committed records of the journal in `dir` (from
/// journal sequence `day_from`, the day's first record, up to `committed`, the writer's last committed
/// batch), or `None` if no such record names it.
///
/// # Errors
/// Storage errors of the read-only mapping.
pub fn find_executed(
    dir: &Path,
    day_from: u64,
    committed: &CommittedBatch,
    match_number: u64,
) -> Result<Option<Executed>, JournalError> {
    let mut storage = MmapStorage::open_read_only(dir)?;
    // Segment ids are their first sequences: the day's segments are the one holding `day_from` and after.
    let mut starts = storage.segment_ids()?;
    let first = starts.partition_point(|&id| id <= day_from).saturating_sub(1);
    starts.drain(..first);
    if starts.is_empty() {
        return Ok(None);
    }
    starts[0] = starts[0].max(day_from);
    let mut reader = Reader::new(storage)?;
    reader.trust_committed(committed)?;
    // The last of the day's segments whose first Executed record (at or after its start) is at most the
    // target: the trade is in it or nowhere (that first match number grows with the segment; a segment
    // with no Executed record after its start counts as above every match number).
    let (mut lo, mut hi) = (0, starts.len());
    // Bounded: the range halves every iteration.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        match next_executed(&mut reader, starts[mid])? {
            Some(x) if x.match_number <= match_number => lo = mid,
            _ => hi = mid,
        }
    }
    reader.seek(starts[lo])?;
    // Bounded: the committed records from that segment on, stopping at the first match number past it.
    while let Some(x) = executed_after(&mut reader)? {
        if x.match_number >= match_number {
            return Ok((x.match_number == match_number).then_some(x));
        }
    }
    Ok(None)
}

/// The first Executed record at or after journal sequence `from`.
fn next_executed(reader: &mut Reader<MmapStorage>, from: u64) -> Result<Option<Executed>, JournalError> {
    reader.seek(from)?;
    executed_after(reader)
}

/// The next Executed record the reader returns (`None` at the end of what is committed).
fn executed_after(reader: &mut Reader<MmapStorage>) -> Result<Option<Executed>, JournalError> {
    // Bounded: the reader stops at the end of the committed records.
    while let Some(record) = reader.next_record()? {
        if record.kind == KIND_EXECUTED
            && let Ok((Event::Executed(x), _)) = Event::decode(record.payload)
        {
            return Ok(Some(x));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bourse_book::event::{Instrument, Party};
    use bourse_book::record::EVENT_SIZE_MAX;
    use bourse_journal::{Journal, JournalConfig, SyncPolicy};
    use bourse_protocol::fields::Alpha;

    fn party(match_number: u64, side: u8) -> Party {
        Party {
            login: u32::from(side),
            token: bourse_book::workload::token(match_number),
            order_ref: match_number * 2 + u64::from(side == b'B'),
            firm: Alpha(*b"F1  "),
            side,
            remaining: (match_number % 7) as u32,
        }
    }

    /// Trade `match_number` of `day` (the day shows in its price).
    fn executed(match_number: u64, day: u32) -> Executed {
        Executed {
            timestamp_ns: match_number * 1_000,
            match_number,
            instrument: Instrument {
                symbol: Alpha(*b"ACME    "),
                locate: 1,
            },
            price: 1_000_000 + day,
            shares: 100,
            resting: party(match_number, b'S'),
            taking: party(match_number, b'B'),
        }
    }

    /// Appends trades `matches` of `day`, with 0-3 other records before each and a commit after every
    /// seventh.
    fn append_day(journal: &mut Journal<MmapStorage>, matches: &[u64], day: u32) {
        let mut buf = [0u8; EVENT_SIZE_MAX];
        for (i, &m) in matches.iter().enumerate() {
            for k in 0..i % 4 {
                // Other records between the trades (an OUCH-sized payload).
                journal.append(0x0101, &[k as u8; 60]).unwrap();
            }
            let n = Event::Executed(executed(m, day)).encode(&mut buf).unwrap();
            journal.append(KIND_EXECUTED, &buf[..n]).unwrap();
            if i % 7 == 6 {
                journal.commit_batch().unwrap();
            }
        }
        journal.commit_batch().unwrap();
    }

    /// Day 1: 300 trades (match numbers 10, 12, ... 608) among other records, over many small segments and
    /// batches of every size: each is found with its parties; match numbers between, before and after
    /// them are not; a trade appended but not committed is not read. Day 2 numbers its trades from 1
    /// again: searched from its first record, each is its own day's, not day 1's of the same number.
    #[test]
    fn every_committed_trade_of_the_day_is_found_across_segments_and_nothing_else() {
        let dir = std::env::temp_dir().join(format!("bourse-trades-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = JournalConfig {
            segment_bytes: 8 << 10,
            payload_bytes_max: 512,
            sync_policy: SyncPolicy::None,
            ..JournalConfig::default()
        };
        let (mut journal, _) = Journal::open(MmapStorage::open(&dir).unwrap(), config).unwrap();
        let day1: Vec<u64> = (0..300).map(|i| 10 + 2 * i).collect();
        let day1_from = journal.next_sequence();
        append_day(&mut journal, &day1, 1);
        let batch = journal.last_committed_batch().unwrap();
        let segments = MmapStorage::open_read_only(&dir)
            .unwrap()
            .segment_ids()
            .unwrap()
            .len();
        assert!(segments >= 8, "{segments} segments");
        for &m in &day1 {
            let found = find_executed(&dir, day1_from, &batch, m).unwrap();
            assert_eq!(found, Some(executed(m, 1)), "match {m}");
        }
        for m in [0, 9, 11, 13, 307, 607, 609, 610, 10_000] {
            assert_eq!(
                find_executed(&dir, day1_from, &batch, m).unwrap(),
                None,
                "match {m}"
            );
        }
        // Appended after the last commit: not read.
        let mut buf = [0u8; EVENT_SIZE_MAX];
        let n = Event::Executed(executed(700, 1)).encode(&mut buf).unwrap();
        journal.append(KIND_EXECUTED, &buf[..n]).unwrap();
        assert_eq!(find_executed(&dir, day1_from, &batch, 700).unwrap(), None);
        journal.commit_batch().unwrap();
        let batch = journal.last_committed_batch().unwrap();
        assert_eq!(
            find_executed(&dir, day1_from, &batch, 700).unwrap(),
            Some(executed(700, 1))
        );
        // Day 2, from 1 again.
        let day2_from = journal.next_sequence();
        let day2: Vec<u64> = (1..=200).collect();
        append_day(&mut journal, &day2, 2);
        let batch = journal.last_committed_batch().unwrap();
        for &m in &day2 {
            let found = find_executed(&dir, day2_from, &batch, m).unwrap();
            assert_eq!(found, Some(executed(m, 2)), "day 2 match {m}");
        }
        assert_eq!(
            find_executed(&dir, day2_from, &batch, 300).unwrap(),
            None,
            "a day 1 number only"
        );
        drop(journal);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
