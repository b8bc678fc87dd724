//! [`MemStorage`]: segments and files in memory. Nothing is lost unless the value is dropped; syncs
//! always succeed. Used by tests, by [`super::FaultStorage`] as its current image, and to inspect images.

use std::collections::BTreeMap;

use super::{Storage, StorageError};

/// An in-memory storage: every write is immediately "durable".
#[derive(Clone, Debug, Default)]
pub struct MemStorage {
    /// Segments by id, ascending.
    segments: BTreeMap<u64, Vec<u8>>,
    /// Files by name.
    files: BTreeMap<String, Vec<u8>>,
}

impl MemStorage {
    /// An empty storage.
    pub fn new() -> MemStorage {
        MemStorage::default()
    }

    /// Mutable access to a segment's bytes, to corrupt it in tests (bit flips, zeroed blocks).
    pub fn segment_mut(&mut self, id: u64) -> Option<&mut [u8]> {
        self.segments.get_mut(&id).map(|s| s.as_mut_slice())
    }

    /// Mutable access to a file's bytes, to corrupt it in tests.
    pub fn file_mut(&mut self, name: &str) -> Option<&mut Vec<u8>> {
        self.files.get_mut(name)
    }

    pub(crate) fn insert_segment(&mut self, id: u64, bytes: Vec<u8>) {
        self.segments.insert(id, bytes);
    }

    pub(crate) fn segments(&self) -> &BTreeMap<u64, Vec<u8>> {
        &self.segments
    }

    pub(crate) fn insert_file(&mut self, name: String, bytes: Vec<u8>) {
        self.files.insert(name, bytes);
    }
}

impl Storage for MemStorage {
    fn segment_ids(&mut self) -> Result<Vec<u64>, StorageError> {
        Ok(self.segments.keys().copied().collect())
    }

    fn create_segment(&mut self, id: u64, bytes: u64, header: &[u8]) -> Result<(), StorageError> {
        assert!(
            header.len() as u64 <= bytes,
            "segment header larger than the segment"
        );
        let mut segment = vec![0u8; bytes as usize];
        segment[..header.len()].copy_from_slice(header);
        self.segments.insert(id, segment);
        Ok(())
    }

    fn remove_segment(&mut self, id: u64) -> Result<(), StorageError> {
        self.segments
            .remove(&id)
            .map(|_| ())
            .ok_or_else(|| StorageError::NotFound(format!("segment {id}")))
    }

    fn segment(&self, id: u64) -> &[u8] {
        self.segments.get(&id).map(|s| s.as_slice()).unwrap_or(&[])
    }

    fn write(&mut self, id: u64, offset: u64, bytes: &[u8]) -> Result<(), StorageError> {
        let segment = self
            .segments
            .get_mut(&id)
            .expect("write to a segment that does not exist");
        let start = offset as usize;
        assert!(
            start + bytes.len() <= segment.len(),
            "write past the end of segment {id}"
        );
        segment[start..start + bytes.len()].copy_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self, _id: u64, _offset: u64, _bytes: u64) -> Result<(), StorageError> {
        Ok(())
    }

    fn file_names(&mut self) -> Result<Vec<String>, StorageError> {
        Ok(self.files.keys().cloned().collect())
    }

    fn write_file(&mut self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        self.files.insert(name.to_string(), bytes.to_vec());
        Ok(())
    }

    fn sync_file(&mut self, _name: &str) -> Result<(), StorageError> {
        Ok(())
    }

    fn rename_file(&mut self, from: &str, to: &str) -> Result<(), StorageError> {
        let bytes = self
            .files
            .remove(from)
            .ok_or_else(|| StorageError::NotFound(from.to_string()))?;
        self.files.insert(to.to_string(), bytes);
        Ok(())
    }

    fn remove_file(&mut self, name: &str) -> Result<(), StorageError> {
        self.files
            .remove(name)
            .map(|_| ())
            .ok_or_else(|| StorageError::NotFound(name.to_string()))
    }

    fn sync_dir(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn read_file(&mut self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.files.get(name).cloned())
    }
}
