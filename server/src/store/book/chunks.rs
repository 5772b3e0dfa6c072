//! Append-only storage in fixed-size chunks: growing never copies what is stored (no long
//! `memcpy` under a shard lock) and holds at most one partly filled chunk, where a doubling
//! `Vec` holds up to twice its length.

/// Values in chunks of `N`.
#[derive(Debug)]
pub(super) struct Chunks<T, const N: usize> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T, const N: usize> Default for Chunks<T, N> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy, const N: usize> Chunks<T, N> {
    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(chunk) if chunk.len() < N => chunk.push(value),
            _ => {
                let mut chunk = Vec::with_capacity(N);
                chunk.push(value);
                self.chunks.push(chunk);
            }
        }
        self.len += 1;
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn get(&self, index: usize) -> Option<T> {
        self.chunks.get(index / N)?.get(index % N).copied()
    }
}

/// Bytes of an arena chunk.
const ARENA_CHUNK: usize = 64 * 1024;

/// Short byte strings (at most 255 bytes), each stored as a length byte and the bytes, never
/// split across chunks, addressed by a `u32` offset.
#[derive(Debug, Default)]
pub(super) struct Arena {
    chunks: Vec<Vec<u8>>,
}

impl Arena {
    /// Stores `bytes`; `None` if longer than 255 bytes or the arena is out of `u32` offsets
    /// (4 GiB); `u32::MAX` is never returned.
    pub fn push(&mut self, bytes: &[u8]) -> Option<u32> {
        let len = u8::try_from(bytes.len()).ok()?;
        let need = 1 + bytes.len();
        let fits = self
            .chunks
            .last()
            .is_some_and(|chunk| ARENA_CHUNK - chunk.len() >= need);
        if !fits {
            // The next chunk's offsets must stay below u32::MAX.
            u32::try_from((self.chunks.len() + 1) * ARENA_CHUNK).ok()?;
            self.chunks.push(Vec::with_capacity(ARENA_CHUNK));
        }
        let index = self.chunks.len() - 1;
        let chunk = self.chunks.last_mut()?;
        let offset = u32::try_from(index * ARENA_CHUNK + chunk.len()).ok()?;
        chunk.push(len);
        chunk.extend_from_slice(bytes);
        Some(offset)
    }

    /// The bytes stored at `offset`.
    pub fn get(&self, offset: u32) -> Option<&[u8]> {
        let offset = offset as usize;
        let chunk = self.chunks.get(offset / ARENA_CHUNK)?;
        let start = offset % ARENA_CHUNK;
        let len = usize::from(*chunk.get(start)?);
        chunk.get(start + 1..start + 1 + len)
    }

    /// Bytes held, including length bytes (not the chunks' unused tails).
    #[cfg(test)]
    pub fn used(&self) -> usize {
        self.chunks.iter().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_index_across_chunk_boundaries() {
        let mut chunks = Chunks::<u32, 3>::default();
        for i in 0..10 {
            chunks.push(i);
        }
        assert_eq!(chunks.len(), 10);
        assert_eq!(chunks.chunks.len(), 4);
        assert_eq!((0..11).map(|i| chunks.get(i)).collect::<Vec<_>>(), {
            let mut all: Vec<_> = (0..10).map(Some).collect();
            all.push(None);
            all
        });
    }

    #[test]
    fn arena_never_splits_a_string() {
        let mut arena = Arena::default();
        let item = [7u8; 200];
        let offsets: Vec<u32> = (0..400).map(|_| arena.push(&item).unwrap()).collect();
        // 326 strings of 201 bytes fit a 64 KiB chunk; the 327th starts the next chunk.
        assert_eq!(offsets[326] as usize, ARENA_CHUNK);
        assert!(offsets.iter().all(|&o| arena.get(o) == Some(&item[..])));
        assert_eq!(arena.push(&[0; 256]), None);
        assert_eq!(arena.push(b""), Some(offsets[399] + 201));
        assert_eq!(arena.get(offsets[399] + 201), Some(&b""[..]));
        assert_eq!(arena.used(), 400 * 201 + 1);
    }
}
