//! [`FaultStorage`]: an in-memory storage that models what a crash keeps, and injects failures.
//!
//! # Crash model
//! - Segments: every write dirties the 4 KiB pages it touches; `sync` of a range makes its (page-aligned)
//!   pages durable. At [`FaultStorage::crash`], each dirty page independently is lost (reverts to its
//!   last durable content), kept, or torn: each of its eight 512 B sectors kept or lost on its own.
//!   Segment creation (size, zeroes, name) and removal are durable when they return; a new segment's
//!   header is a dirty page until a sync covers it (as the mmap storage's spare path leaves it).
//! - Files: data is durable after `sync_file`; directory operations (create, rename, remove) after
//!   `sync_dir`. At a crash, an unsynced file's data is its durable data, its current data, or a
//!   sector-wise mix of both; of the directory operations since the last `sync_dir`, a prefix survives.
//!
//! # Injected failures
//! [`FaultConfig`]: EIO on the n-th sync and every one after it, ENOSPC on the n-th segment creation.
//! Corruption at rest: [`FaultStorage::flip_bit`], [`FaultStorage::zero`].
//!
//! Randomness comes from a seeded SplitMix64, so a failing run replays from its seed.

use std::collections::{BTreeMap, BTreeSet};

use super::{MemStorage, Storage, StorageError};

/// Page size of the crash model (the granularity of `msync` and of the page cache).
pub const PAGE_BYTES: u64 = 4096;
/// Sector size of the crash model (the granularity of a torn write).
pub const SECTOR_BYTES: u64 = 512;

/// Which failures to inject.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultConfig {
    /// The sync with this 0-based index, and every later one, fails with EIO (syncs of segments and files).
    pub sync_eio_from: Option<u64>,
    /// The segment creation with this 0-based index, and every later one, fails with ENOSPC.
    pub create_enospc_from: Option<u64>,
}

/// A small seeded generator (SplitMix64): deterministic, good enough to choose crash outcomes.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }
}

#[derive(Clone, Debug)]
struct Inode {
    current: Vec<u8>,
    durable: Vec<u8>,
    dirty: bool,
}

#[derive(Clone, Debug)]
enum DirOp {
    Link(String, usize),
    Rename(String, String),
    Unlink(String),
}

fn apply(dir: &mut BTreeMap<String, usize>, op: &DirOp) {
    match op {
        DirOp::Link(name, inode) => {
            dir.insert(name.clone(), *inode);
        }
        DirOp::Rename(from, to) => {
            if let Some(inode) = dir.remove(from) {
                dir.insert(to.clone(), inode);
            }
        }
        DirOp::Unlink(name) => {
            dir.remove(name);
        }
    }
}

/// Mixes `durable` and `current` sector by sector (`choice` picks per sector), to model a torn write.
fn torn(durable: &[u8], current: &[u8], rng: &mut SplitMix64) -> Vec<u8> {
    let len = if rng.below(2) == 0 {
        durable.len()
    } else {
        current.len()
    };
    let mut out = vec![0u8; len];
    for (sector, chunk) in out.chunks_mut(SECTOR_BYTES as usize).enumerate() {
        let start = sector * SECTOR_BYTES as usize;
        let source = if rng.below(2) == 0 { durable } else { current };
        for (i, byte) in chunk.iter_mut().enumerate() {
            *byte = source.get(start + i).copied().unwrap_or(0);
        }
    }
    out
}

/// An in-memory storage with a crash model and injected failures (see the module header).
#[derive(Clone, Debug, Default)]
pub struct FaultStorage {
    /// What the writer sees (the page cache).
    current: MemStorage,
    /// What is on the platter for each segment.
    durable: BTreeMap<u64, Vec<u8>>,
    /// Pages written since their last sync, per segment.
    dirty_pages: BTreeMap<u64, BTreeSet<u64>>,
    inodes: Vec<Inode>,
    dir_current: BTreeMap<String, usize>,
    dir_durable: BTreeMap<String, usize>,
    dir_pending: Vec<DirOp>,
    faults: FaultConfig,
    syncs: u64,
    creates: u64,
}

impl FaultStorage {
    /// An empty storage with the given failures.
    pub fn new(faults: FaultConfig) -> FaultStorage {
        FaultStorage {
            faults,
            ..FaultStorage::default()
        }
    }

    /// Changes which failures are injected from now on (counters keep running).
    pub fn set_faults(&mut self, faults: FaultConfig) {
        self.faults = faults;
    }

    /// Number of syncs attempted so far (segments and files).
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }

    /// The state after a crash now: unsynced pages and files lost, kept or torn as `seed` decides. The
    /// result has everything durable and no failures configured.
    pub fn crash(&self, seed: u64) -> FaultStorage {
        let mut rng = SplitMix64::new(seed);
        let mut image = MemStorage::new();
        for (&id, current) in self.current.segments() {
            let durable = &self.durable[&id];
            let mut bytes = durable.clone();
            if let Some(pages) = self.dirty_pages.get(&id) {
                for &page in pages {
                    let start = (page * PAGE_BYTES) as usize;
                    let end = (start + PAGE_BYTES as usize).min(bytes.len());
                    match rng.below(3) {
                        0 => {} // lost
                        1 => bytes[start..end].copy_from_slice(&current[start..end]),
                        _ => {
                            let mixed = torn(&durable[start..end], &current[start..end], &mut rng);
                            bytes[start..end].copy_from_slice(&mixed[..end - start]);
                        }
                    }
                }
            }
            image.insert_segment(id, bytes);
        }
        let mut dir = self.dir_durable.clone();
        let kept_ops = rng.below(self.dir_pending.len() as u64 + 1) as usize;
        for op in &self.dir_pending[..kept_ops] {
            apply(&mut dir, op);
        }
        for (name, &inode) in &dir {
            let inode = &self.inodes[inode];
            let data = if !inode.dirty {
                inode.current.clone()
            } else {
                match rng.below(3) {
                    0 => inode.durable.clone(),
                    1 => inode.current.clone(),
                    _ => torn(&inode.durable, &inode.current, &mut rng),
                }
            };
            image.insert_file(name.clone(), data);
        }
        FaultStorage::from_image(image)
    }

    /// A storage whose durable and current state are `image`.
    pub fn from_image(image: MemStorage) -> FaultStorage {
        let mut storage = FaultStorage::default();
        for (&id, bytes) in image.segments() {
            storage.durable.insert(id, bytes.clone());
        }
        let mut image = image;
        for name in image.file_names().unwrap_or_default() {
            let data = image.read_file(&name).ok().flatten().unwrap_or_default();
            storage.inodes.push(Inode {
                current: data.clone(),
                durable: data,
                dirty: false,
            });
            storage.dir_current.insert(name.clone(), storage.inodes.len() - 1);
        }
        storage.dir_durable = storage.dir_current.clone();
        storage.current = image;
        storage
    }

    /// Flips bit `bit` of byte `offset` of segment `id`, durably (corruption at rest).
    ///
    /// # Panics
    /// If the segment or offset does not exist.
    pub fn flip_bit(&mut self, id: u64, offset: u64, bit: u8) {
        let mask = 1u8 << (bit % 8);
        self.current.segment_mut(id).expect("segment")[offset as usize] ^= mask;
        self.durable.get_mut(&id).expect("segment")[offset as usize] ^= mask;
    }

    /// Zeroes `bytes` bytes of segment `id` from `offset`, durably (a lost block).
    ///
    /// # Panics
    /// If the range does not exist.
    pub fn zero(&mut self, id: u64, offset: u64, bytes: u64) {
        let range = offset as usize..(offset + bytes) as usize;
        self.current.segment_mut(id).expect("segment")[range.clone()].fill(0);
        self.durable.get_mut(&id).expect("segment")[range].fill(0);
    }

    /// Mutable access to a file's current and durable data at once (corruption at rest).
    pub fn corrupt_file(&mut self, name: &str, edit: impl Fn(&mut Vec<u8>)) {
        if let Some(&inode) = self.dir_current.get(name) {
            edit(&mut self.inodes[inode].current);
            edit(&mut self.inodes[inode].durable);
        }
    }

    fn sync_fault(&mut self, what: &str) -> Result<(), StorageError> {
        let index = self.syncs;
        self.syncs += 1;
        match self.faults.sync_eio_from {
            Some(from) if index >= from => Err(StorageError::io(
                format!("{what} (injected)"),
                std::io::Error::from_raw_os_error(libc::EIO),
            )),
            _ => Ok(()),
        }
    }
}

impl Storage for FaultStorage {
    fn segment_ids(&mut self) -> Result<Vec<u64>, StorageError> {
        self.current.segment_ids()
    }

    fn create_segment(&mut self, id: u64, bytes: u64, header: &[u8]) -> Result<(), StorageError> {
        let index = self.creates;
        self.creates += 1;
        if matches!(self.faults.create_enospc_from, Some(from) if index >= from) {
            return Err(StorageError::NoSpace {
                segment_id: id,
                bytes,
            });
        }
        self.current.create_segment(id, bytes, header)?;
        // The zeroes and the name are durable; the header only after a sync covering it.
        self.durable.insert(id, vec![0u8; bytes as usize]);
        let pages = self.dirty_pages.entry(id).or_default();
        pages.clear();
        if !header.is_empty() {
            pages.extend(0..=(header.len() as u64 - 1) / PAGE_BYTES);
        }
        Ok(())
    }

    fn remove_segment(&mut self, id: u64) -> Result<(), StorageError> {
        self.current.remove_segment(id)?;
        self.durable.remove(&id);
        self.dirty_pages.remove(&id);
        Ok(())
    }

    fn segment(&self, id: u64) -> &[u8] {
        self.current.segment(id)
    }

    fn write(&mut self, id: u64, offset: u64, bytes: &[u8]) -> Result<(), StorageError> {
        self.current.write(id, offset, bytes)?;
        if !bytes.is_empty() {
            let pages = self.dirty_pages.entry(id).or_default();
            let first = offset / PAGE_BYTES;
            let last = (offset + bytes.len() as u64 - 1) / PAGE_BYTES;
            pages.extend(first..=last);
        }
        Ok(())
    }

    fn sync(&mut self, id: u64, offset: u64, bytes: u64) -> Result<(), StorageError> {
        self.sync_fault("sync segment")?;
        if bytes == 0 {
            return Ok(());
        }
        let first = offset / PAGE_BYTES;
        let last = (offset + bytes - 1) / PAGE_BYTES;
        let current = self.current.segment(id);
        let durable = self
            .durable
            .get_mut(&id)
            .ok_or_else(|| StorageError::NotFound(format!("segment {id}")))?;
        if let Some(pages) = self.dirty_pages.get_mut(&id) {
            let synced: Vec<u64> = pages.range(first..=last).copied().collect();
            for page in synced {
                let start = (page * PAGE_BYTES) as usize;
                let end = (start + PAGE_BYTES as usize).min(current.len());
                durable[start..end].copy_from_slice(&current[start..end]);
                pages.remove(&page);
            }
        }
        Ok(())
    }

    fn file_names(&mut self) -> Result<Vec<String>, StorageError> {
        Ok(self.dir_current.keys().cloned().collect())
    }

    fn write_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        if let Some(&inode) = self.dir_current.get(name) {
            let inode = &mut self.inodes[inode];
            inode.current = bytes.to_vec();
            inode.dirty = true;
        } else {
            self.inodes.push(Inode {
                current: bytes.to_vec(),
                durable: Vec::new(),
                dirty: true,
            });
            let op = DirOp::Link(name.to_string(), self.inodes.len() - 1);
            apply(&mut self.dir_current, &op);
            self.dir_pending.push(op);
        }
        Ok(())
    }

    fn sync_file(&mut self, name: &str) -> Result<(), StorageError> {
        self.sync_fault("sync file")?;
        let &inode = self
            .dir_current
            .get(name)
            .ok_or_else(|| StorageError::NotFound(name.to_string()))?;
        let inode = &mut self.inodes[inode];
        inode.durable = inode.current.clone();
        inode.dirty = false;
        Ok(())
    }

    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        if !self.dir_current.contains_key(from) {
            return Err(StorageError::NotFound(from.to_string()));
        }
        let op = DirOp::Rename(from.to_string(), to.to_string());
        apply(&mut self.dir_current, &op);
        self.dir_pending.push(op);
        Ok(())
    }

    fn remove_file(&mut self, name: &str) -> Result<(), StorageError> {
        if !self.dir_current.contains_key(name) {
            return Err(StorageError::NotFound(name.to_string()));
        }
        let op = DirOp::Unlink(name.to_string());
        apply(&mut self.dir_current, &op);
        self.dir_pending.push(op);
        Ok(())
    }

    fn sync_dir(&mut self) -> Result<(), StorageError> {
        self.sync_fault("sync directory")?;
        self.dir_durable = self.dir_current.clone();
        self.dir_pending.clear();
        Ok(())
    }

    fn read_file(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self
            .dir_current
            .get(name)
            .map(|&inode| self.inodes[inode].current.clone()))
    }
}
