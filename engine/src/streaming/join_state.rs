//! The rows one input of the regular streaming join (`join.rs`) holds,
//! kept columnar.
//!
//! Why columnar: the join reads its state to build output rows and to feed
//! its non-equi filter, both of which want Arrow arrays. Keeping the rows as
//! the Arrow batches they arrived in (only the inserted rows, appended as
//! they come) lets the join gather candidates with `interleave` instead of
//! encoding every row with arrow-row on the way in and decoding it on the
//! way out, and costs no allocation per row. This is the layout of
//! DataFusion's hash join build side (`JoinHashMap`: a head per key and a
//! `next` chain through the row positions), kept incrementally.
//!
//! Each held row is a *slot* (`u32`, in arrival order) with its values at a
//! (batch, row) position and per-slot vectors: alive, the number of rows of
//! the other side it matches, the processing time it was last written (only
//! with a state TTL), the hash of the whole row (only for an input that can
//! retract, to find the row a retraction names), its key and the next older
//! slot of the same key. A key (arrow-row encoded) maps to its newest slot.
//! Copies of a row are separate slots.
//!
//! A retracted or expired row is only marked dead; when dead slots outnumber
//! live ones (and there are at least [`COMPACT_MIN_DEAD`]), the live rows are
//! copied into fresh batches and the chains and keys are rebuilt, so memory
//! follows the live rows at an amortized O(1) per row. Small input batches
//! (under [`KEEP_ROWS`]) are merged as they are appended (a binary-counter
//! merge, at most [`BATCH_ROWS`] rows) so that there are not many tiny
//! batches; larger ones are kept as they came.

use std::hash::BuildHasher;

use arrow::array::{Array, ArrayRef, RecordBatchOptions, new_empty_array};
use arrow::compute::interleave;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::RandomState;
use datafusion::error::{DataFusionError, Result};

/// The end of a key's chain.
pub(super) const NIL: u32 = u32::MAX;

/// Rows per stored batch that small batches are merged up to, and per batch
/// written by a compaction.
pub(super) const BATCH_ROWS: usize = 8192;

/// Appended batches of at least this many rows are kept as they came:
/// merging them would copy every row for little (a gather reads only the
/// batches its slots are in, so many batches cost it nothing).
pub(super) const KEEP_ROWS: usize = 1024;

/// Dead slots below which a side never compacts.
pub(super) const COMPACT_MIN_DEAD: usize = 4096;

/// A key's entry in a side: its newest slot and how many of its slots are
/// alive.
#[derive(Debug, Clone, Copy)]
struct KeyEntry {
    head: u32,
    live: u32,
}

impl KeyEntry {
    const EMPTY: KeyEntry = KeyEntry { head: NIL, live: 0 };
}

/// Encoded (arrow-row) keys numbered 0, 1, ... in order of first insertion.
///
/// A side owns one unless it is given key ids from outside
/// ([`SideRows::with_shared_keys`]): the time-bounded join keeps one index
/// for both its sides, so a key costs one lookup per batch instead of one in
/// the other side's index and another in its own (the lookups are cache
/// misses on a large state).
#[derive(Debug, Default)]
pub(super) struct KeyIndex {
    /// Open addressing with linear probing, at most half full: 0 is an
    /// empty slot, else the upper 32 bits of the key's hash and its id + 1.
    /// One flat array (not a map of hash → id) so that a batch can load the
    /// slots of all its keys first and let their cache misses overlap (see
    /// [`KeyIndex::get_or_insert_many`]).
    table: Vec<u64>,
    /// Each key's hash, to grow the table without hashing the keys again.
    hashes: Vec<u64>,
    /// The keys' bytes, one after another (no allocation per key): key `k`
    /// is `bytes[offsets[k]..offsets[k + 1]]`.
    bytes: Vec<u8>,
    offsets: Vec<usize>,
    state: RandomState,
}

impl KeyIndex {
    /// Keys numbered so far.
    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    /// The encoded bytes of key `id`.
    pub fn bytes(&self, id: u32) -> &[u8] {
        let k = id as usize;
        &self.bytes[self.offsets[k]..self.offsets[k + 1]]
    }

    /// The id of an encoded key with hash `hash`, if numbered.
    fn find(&self, key: &[u8], hash: u64) -> Option<u32> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.table.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            let entry = self.table[i];
            if entry == 0 {
                return None;
            }
            if entry >> 32 == hash >> 32 {
                let id = (entry as u32).wrapping_sub(1);
                if self.bytes(id) == key {
                    return Some(id);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The hash the index files an encoded key under.
    fn hash(&self, key: &[u8]) -> u64 {
        self.state.hash_one(key)
    }

    /// Files key `id` with hash `hash` in the first free slot of its probe
    /// sequence (the table has one).
    fn place(&mut self, hash: u64, id: u32) {
        let mask = self.table.len() - 1;
        let mut i = hash as usize & mask;
        while self.table[i] != 0 {
            i = (i + 1) & mask;
        }
        self.table[i] = (hash >> 32 << 32) | (u64::from(id) + 1);
    }

    /// Makes room for `more` new keys (the table stays at most half full).
    fn reserve(&mut self, more: usize) {
        let need = (self.len() + more).saturating_mul(2);
        if need <= self.table.len() {
            return;
        }
        self.table = vec![0; need.next_power_of_two().max(64)];
        for id in 0..self.hashes.len() {
            self.place(self.hashes[id], id as u32);
        }
    }

    /// Numbers a key not in the index.
    fn insert_new(&mut self, key: &[u8], hash: u64) -> u32 {
        self.reserve(1);
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        let id = self.len() as u32;
        self.place(hash, id);
        self.hashes.push(hash);
        self.bytes.extend_from_slice(key);
        self.offsets.push(self.bytes.len());
        id
    }

    /// The id of an encoded key, if numbered.
    pub fn get(&self, key: &[u8]) -> Option<u32> {
        self.find(key, self.hash(key))
    }

    /// The id of an encoded key, numbered if new.
    pub fn get_or_insert(&mut self, key: &[u8]) -> u32 {
        let hash = self.hash(key);
        match self.find(key, hash) {
            Some(id) => id,
            None => self.insert_new(key, hash),
        }
    }

    /// [`KeyIndex::get_or_insert`] of each key, in order. On a large index
    /// nearly every lookup misses the cache; loading every key's first slot
    /// in a tight loop before probing lets those misses overlap instead of
    /// waiting for one after another.
    pub fn get_or_insert_many(&mut self, keys: &[&[u8]]) -> Vec<u32> {
        self.reserve(keys.len());
        let hashes = self.hashes_touched(keys);
        keys.iter()
            .zip(hashes)
            .map(|(key, hash)| match self.find(key, hash) {
                Some(id) => id,
                None => self.insert_new(key, hash),
            })
            .collect()
    }

    /// [`KeyIndex::get`] of each key, in order (`NIL`: not numbered), with
    /// the cache misses overlapped as in [`KeyIndex::get_or_insert_many`].
    pub fn get_many(&self, keys: &[&[u8]]) -> Vec<u32> {
        if self.table.is_empty() {
            return vec![NIL; keys.len()];
        }
        let hashes = self.hashes_touched(keys);
        keys.iter()
            .zip(hashes)
            .map(|(key, hash)| self.find(key, hash).unwrap_or(NIL))
            .collect()
    }

    /// The keys' hashes, each key's first table slot loaded (the table is
    /// not empty).
    fn hashes_touched(&self, keys: &[&[u8]]) -> Vec<u64> {
        let hashes: Vec<u64> = keys.iter().map(|k| self.hash(k)).collect();
        let mask = self.table.len() - 1;
        let touched = hashes
            .iter()
            .fold(0u64, |acc, h| acc ^ self.table[*h as usize & mask]);
        std::hint::black_box(touched);
        hashes
    }

    /// The index of only the keys for which `keep` holds, renumbered in
    /// order, and each old key's new id (`NIL`: dropped).
    pub fn retain(&self, keep: impl Fn(u32) -> bool) -> (KeyIndex, Vec<u32>) {
        // Same hasher: the kept keys' hashes are reused.
        let mut fresh = KeyIndex {
            state: self.state.clone(),
            ..KeyIndex::default()
        };
        let new_id = (0..self.len() as u32)
            .map(|k| {
                if keep(k) {
                    fresh.insert_new(self.bytes(k), self.hashes[k as usize])
                } else {
                    NIL
                }
            })
            .collect();
        (fresh, new_id)
    }
}

/// The rows of one join input (see the module docs).
pub(super) struct SideRows {
    schema: SchemaRef,
    /// The rows' values; slot `s` is at `batches[loc[s].0]` row `loc[s].1`.
    batches: Vec<RecordBatch>,
    /// The first slot of each batch.
    first_slot: Vec<u32>,
    loc: Vec<(u32, u32)>,
    alive: Vec<bool>,
    /// Rows of the other side the slot matches (outer, semi and anti sides
    /// decide on it).
    matches: Vec<u64>,
    /// Processing time (ms) of the last write, with a TTL only.
    written_ms: Vec<u64>,
    /// Hash of the whole row (`create_hashes` over every column), for an
    /// input that can retract.
    row_hash: Vec<u64>,
    key_of: Vec<u32>,
    /// The next older slot of the same key (`NIL`: none).
    next: Vec<u32>,
    /// The side's own key index (empty with shared keys).
    index: KeyIndex,
    /// By key id (own or shared).
    keys: Vec<KeyEntry>,
    /// Key ids come from an index outside (see
    /// [`SideRows::with_shared_keys`]).
    shared_keys: bool,
    live: usize,
    dead: usize,
    track_time: bool,
    track_hash: bool,
    /// Whether `matches` is kept (see [`SideRows::without_matches`]).
    track_matches: bool,
}

impl SideRows {
    /// An empty side of `schema`; `track_time`: keep each row's write time
    /// (a TTL is set); `track_hash`: keep each row's hash (the input can
    /// retract).
    pub fn new(schema: SchemaRef, track_time: bool, track_hash: bool) -> Self {
        Self {
            schema,
            batches: Vec::new(),
            first_slot: Vec::new(),
            loc: Vec::new(),
            alive: Vec::new(),
            matches: Vec::new(),
            written_ms: Vec::new(),
            row_hash: Vec::new(),
            key_of: Vec::new(),
            next: Vec::new(),
            index: KeyIndex::default(),
            keys: Vec::new(),
            shared_keys: false,
            live: 0,
            dead: 0,
            track_time,
            track_hash,
            track_matches: true,
        }
    }

    /// The same side keeping no match count per row (8 bytes a row), for a
    /// side whose join type never reads it (an inner side): then
    /// [`SideRows::matches`] is always 0 and [`SideRows::set_matches`] keeps
    /// only the write time.
    pub fn without_matches(mut self) -> Self {
        self.track_matches = false;
        self
    }

    /// The same side taking its key ids from a [`KeyIndex`] kept outside
    /// (shared with the other side of a join): [`SideRows::activate`] takes
    /// any id, compaction keeps the ids, and [`SideRows::renumber_keys`]
    /// follows the index when it drops keys. [`SideRows::key_id`] and
    /// [`SideRows::key_id_or_insert`] are not used then.
    pub fn with_shared_keys(mut self) -> Self {
        self.shared_keys = true;
        self
    }

    /// Whether key `id` has live rows here.
    pub fn has_live_key(&self, id: u32) -> bool {
        self.keys.get(id as usize).is_some_and(|e| e.live > 0)
    }

    /// Follows a shared key index that dropped keys: key `k` is now
    /// `new_id[k]`; a dropped key (`NIL`) must have no live rows.
    pub fn renumber_keys(&mut self, new_id: &[u32]) {
        let mut keys = Vec::new();
        for (k, entry) in self.keys.iter().enumerate() {
            let id = new_id[k];
            if id != NIL {
                if id as usize >= keys.len() {
                    keys.resize(id as usize + 1, KeyEntry::EMPTY);
                }
                keys[id as usize] = *entry;
            }
        }
        self.keys = keys;
        for k in &mut self.key_of {
            if *k != NIL {
                *k = new_id[*k as usize];
            }
        }
    }

    /// Live rows held.
    pub fn live_rows(&self) -> usize {
        self.live
    }

    /// Stored batches.
    #[cfg(test)]
    pub fn batches_len(&self) -> usize {
        self.batches.len()
    }

    /// Whether rows keep their hash (the input can retract).
    pub fn tracks_hash(&self) -> bool {
        self.track_hash
    }

    /// The encoded bytes of key `id` (own index).
    fn key_bytes(&self, id: u32) -> &[u8] {
        self.index.bytes(id)
    }

    /// The key id of an encoded key, if the side has seen it.
    pub fn key_id(&self, key: &[u8]) -> Option<u32> {
        self.index.get(key)
    }

    /// The key id of an encoded key, made if new.
    pub fn key_id_or_insert(&mut self, key: &[u8]) -> u32 {
        let id = self.index.get_or_insert(key);
        if id as usize == self.keys.len() {
            self.keys.push(KeyEntry::EMPTY);
        }
        id
    }

    /// Appends the values of rows about to be inserted (not yet alive: see
    /// [`SideRows::activate`]); returns the slot of the first. `batch` has
    /// the side's schema.
    ///
    /// # Errors
    /// More than `u32::MAX - 1` slots; arrow errors merging batches.
    pub fn append(&mut self, batch: RecordBatch) -> Result<u32> {
        let n = batch.num_rows();
        let first = self.loc.len();
        if first + n >= NIL as usize {
            return Err(DataFusionError::ResourcesExhausted(format!(
                "a join side holds more than {} rows in one instance; raise parallelism.default",
                NIL - 1
            )));
        }
        if n == 0 {
            return Ok(first as u32);
        }
        let b = self.batches.len() as u32;
        self.batches.push(batch);
        self.first_slot.push(first as u32);
        self.loc.extend((0..n as u32).map(|r| (b, r)));
        self.alive.resize(first + n, false);
        if self.track_matches {
            self.matches.resize(first + n, 0);
        }
        if self.track_time {
            self.written_ms.resize(first + n, 0);
        }
        if self.track_hash {
            self.row_hash.resize(first + n, 0);
        }
        self.key_of.resize(first + n, NIL);
        self.next.resize(first + n, NIL);
        self.dead += n;
        self.merge_tail()?;
        Ok(first as u32)
    }

    /// Merges the last two batches while the older is small and not more
    /// than twice the newer (a binary counter: each row is copied O(log)
    /// times before its batch reaches [`BATCH_ROWS`]).
    fn merge_tail(&mut self) -> Result<()> {
        while self.batches.len() >= 2 {
            let k = self.batches.len();
            let (older, newer) = (
                self.batches[k - 2].num_rows(),
                self.batches[k - 1].num_rows(),
            );
            if older >= BATCH_ROWS
                || older > 2 * newer
                || older + newer > 2 * BATCH_ROWS
                || newer >= KEEP_ROWS
            {
                return Ok(());
            }
            let merged = concat(&self.schema, &self.batches[k - 2..])?;
            self.batches.truncate(k - 2);
            self.batches.push(merged);
            let moved = self.first_slot.pop().unwrap_or_default() as usize;
            for (b, r) in &mut self.loc[moved..] {
                *b = (k - 2) as u32;
                *r += older as u32;
            }
        }
        Ok(())
    }

    /// Makes appended slot `slot` a live row of key `key` with `matches`
    /// matches, written at `now_ms`, whose whole row hashes to `hash`.
    pub fn activate(&mut self, slot: u32, key: u32, matches: u64, now_ms: u64, hash: u64) {
        let s = slot as usize;
        if self.alive[s] {
            return;
        }
        self.alive[s] = true;
        if self.track_matches {
            self.matches[s] = matches;
        }
        if self.track_time {
            self.written_ms[s] = now_ms;
        }
        if self.track_hash {
            self.row_hash[s] = hash;
        }
        self.key_of[s] = key;
        if key as usize >= self.keys.len() {
            self.keys.resize(key as usize + 1, KeyEntry::EMPTY);
        }
        let entry = &mut self.keys[key as usize];
        self.next[s] = entry.head;
        entry.head = slot;
        entry.live += 1;
        self.live += 1;
        self.dead -= 1;
    }

    /// Marks a live slot dead.
    pub fn kill(&mut self, slot: u32) {
        let s = slot as usize;
        if !self.alive[s] {
            return;
        }
        self.alive[s] = false;
        if let Some(entry) = self.keys.get_mut(self.key_of[s] as usize) {
            entry.live -= 1;
        }
        self.live -= 1;
        self.dead += 1;
    }

    /// Marks every slot dead: when all go at once (e.g. at the end of
    /// input) this is a few linear passes instead of a key-entry update
    /// (a cache miss) per row.
    pub fn kill_all(&mut self) {
        self.alive.fill(false);
        for entry in &mut self.keys {
            entry.live = 0;
        }
        self.dead += self.live;
        self.live = 0;
    }

    /// The live slots of key `key`, newest first, appended to `out`.
    pub fn slots_of(&self, key: u32, out: &mut Vec<u32>) {
        let Some(entry) = self.keys.get(key as usize) else {
            return;
        };
        if entry.live == 0 {
            return;
        }
        let mut s = entry.head;
        while s != NIL {
            if self.alive[s as usize] {
                out.push(s);
            }
            s = self.next[s as usize];
        }
    }

    /// The first live slot of key `key` whose row hashes to `hash` and for
    /// which `equal` holds.
    ///
    /// # Errors
    /// What `equal` returns.
    pub fn find(
        &self,
        key: u32,
        hash: u64,
        mut equal: impl FnMut(u32) -> Result<bool>,
    ) -> Result<Option<u32>> {
        let Some(entry) = self.keys.get(key as usize) else {
            return Ok(None);
        };
        let mut s = entry.head;
        while s != NIL {
            let i = s as usize;
            if self.alive[i] && (!self.track_hash || self.row_hash[i] == hash) && equal(s)? {
                return Ok(Some(s));
            }
            s = self.next[i];
        }
        Ok(None)
    }

    /// A slot's match count.
    pub fn matches(&self, slot: u32) -> u64 {
        self.matches.get(slot as usize).copied().unwrap_or(0)
    }

    /// Sets a slot's match count (a write, at `now_ms`).
    pub fn set_matches(&mut self, slot: u32, matches: u64, now_ms: u64) {
        let s = slot as usize;
        if self.track_matches {
            self.matches[s] = matches;
        }
        if self.track_time {
            self.written_ms[s] = now_ms;
        }
    }

    /// When a slot was last written (0 without a TTL).
    pub fn written_ms(&self, slot: u32) -> u64 {
        self.written_ms.get(slot as usize).copied().unwrap_or(0)
    }

    /// Kills the live slots of key `key` for which `expired` holds.
    pub fn expire_key(&mut self, key: u32, expired: impl Fn(u64) -> bool) {
        let mut slots = Vec::new();
        self.slots_of(key, &mut slots);
        for s in slots {
            if expired(self.written_ms(s)) {
                self.kill(s);
            }
        }
    }

    /// Kills every live slot for which `expired` (of its write time) holds.
    pub fn expire_all(&mut self, expired: impl Fn(u64) -> bool) {
        for s in 0..self.loc.len() {
            if self.alive[s] && expired(self.written_ms.get(s).copied().unwrap_or(0)) {
                self.kill(s as u32);
            }
        }
    }

    /// Every live slot with its encoded key, in no set order.
    pub fn live_slots_by_key(&self) -> Vec<(&[u8], u32)> {
        let mut out = Vec::with_capacity(self.live);
        let mut slots = Vec::new();
        for id in 0..self.keys.len() as u32 {
            slots.clear();
            self.slots_of(id, &mut slots);
            out.extend(slots.iter().map(|s| (self.key_bytes(id), *s)));
        }
        out
    }

    /// The values of `slots`, in that order, as columns of the side's
    /// schema.
    ///
    /// # Errors
    /// Arrow errors.
    pub fn gather(&self, slots: &[u32]) -> Result<Vec<ArrayRef>> {
        gather_slots(&self.schema, &self.batches, &self.loc, slots)
    }

    /// The values of one slot as a one-row batch.
    pub fn row(&self, slot: u32) -> RecordBatch {
        let (b, r) = self.loc[slot as usize];
        self.batches[b as usize].slice(r as usize, 1)
    }

    /// Compacts when dead slots outnumber live ones (and are at least
    /// [`COMPACT_MIN_DEAD`]): live rows move, in slot order, to fresh
    /// batches, keys without live rows are forgotten. Returns, if it
    /// compacted, each old slot's new slot (`NIL`: freed).
    ///
    /// # Errors
    /// Arrow errors copying the rows.
    pub fn maybe_compact(&mut self) -> Result<Option<Vec<u32>>> {
        // Appended slots not yet alive are counted dead; the joins activate
        // them before they compact, so none is pending here.
        if self.dead < COMPACT_MIN_DEAD || self.dead <= self.live {
            return Ok(None);
        }
        let keep: Vec<u32> = (0..self.loc.len() as u32)
            .filter(|s| self.alive[*s as usize])
            .collect();
        let mut batches = Vec::new();
        let mut first_slot = Vec::new();
        for chunk in keep.chunks(BATCH_ROWS) {
            first_slot.push((batches.len() * BATCH_ROWS) as u32);
            let columns = self.gather(chunk)?;
            batches.push(RecordBatch::try_new_with_options(
                self.schema.clone(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(chunk.len())),
            )?);
        }
        let mut new_id = vec![NIL; self.keys.len()];
        let mut moved = vec![NIL; self.loc.len()];
        let mut fresh = Self::new(self.schema.clone(), self.track_time, self.track_hash);
        fresh.track_matches = self.track_matches;
        fresh.shared_keys = self.shared_keys;
        fresh.batches = batches;
        fresh.first_slot = first_slot;
        for (new, &old) in keep.iter().enumerate() {
            let o = old as usize;
            let k = self.key_of[o] as usize;
            if new_id[k] == NIL {
                new_id[k] = if self.shared_keys {
                    k as u32
                } else {
                    fresh.key_id_or_insert(self.key_bytes(k as u32))
                };
            }
            let new = new as u32;
            moved[o] = new;
            fresh
                .loc
                .push((new / BATCH_ROWS as u32, new % BATCH_ROWS as u32));
            fresh.alive.push(false);
            if self.track_matches {
                fresh.matches.push(0);
            }
            if self.track_time {
                fresh.written_ms.push(0);
            }
            if self.track_hash {
                fresh.row_hash.push(0);
            }
            fresh.key_of.push(NIL);
            fresh.next.push(NIL);
            fresh.dead += 1;
            fresh.activate(
                new,
                new_id[k],
                self.matches(old),
                self.written_ms(old),
                self.row_hash.get(o).copied().unwrap_or(0),
            );
        }
        *self = fresh;
        Ok(Some(moved))
    }
}

/// The values at `slots` of rows stored in `batches` at `loc`, as columns of
/// `schema` (`interleave` over the batches).
///
/// # Errors
/// Arrow errors.
pub(super) fn gather_slots(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    loc: &[(u32, u32)],
    slots: &[u32],
) -> Result<Vec<ArrayRef>> {
    if slots.is_empty() || batches.is_empty() {
        return Ok(schema
            .fields()
            .iter()
            .map(|f| new_empty_array(f.data_type()))
            .collect());
    }
    // Only the batches the slots are in, numbered in order of first use.
    let mut local = vec![NIL; batches.len()];
    let mut used: Vec<&RecordBatch> = Vec::new();
    let indices: Vec<(usize, usize)> = slots
        .iter()
        .map(|s| {
            let (b, r) = loc[*s as usize];
            let l = &mut local[b as usize];
            if *l == NIL {
                *l = used.len() as u32;
                used.push(&batches[b as usize]);
            }
            (*l as usize, r as usize)
        })
        .collect();
    (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = used.iter().map(|b| b.column(c).as_ref()).collect();
            Ok(interleave(&arrays, &indices)?)
        })
        .collect()
}

/// `batches` as one batch of `schema` (row counts kept for batches without
/// columns).
fn concat(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<RecordBatch> {
    let rows = batches.iter().map(|b| b.num_rows()).sum();
    if schema.fields().is_empty() {
        return Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )?);
    }
    Ok(arrow::compute::concat_batches(schema, batches)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, true),
            Field::new("v", DataType::Utf8, true),
        ]))
    }

    fn batch(rows: &[(i64, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap()
    }

    /// Appends and activates rows under key `k` (its decimal bytes).
    fn insert(side: &mut SideRows, rows: &[(i64, &str)]) -> Vec<u32> {
        let first = side.append(batch(rows)).unwrap();
        rows.iter()
            .enumerate()
            .map(|(i, (k, _))| {
                let key = side.key_id_or_insert(k.to_string().as_bytes());
                let slot = first + i as u32;
                side.activate(slot, key, 0, 0, *k as u64);
                slot
            })
            .collect()
    }

    /// The values of `slots` as "k:v".
    fn show(side: &SideRows, slots: &[u32]) -> Vec<String> {
        let c = side.gather(slots).unwrap();
        let (k, v) = (c[0].as_primitive::<Int64Type>(), c[1].as_string::<i32>());
        (0..k.len())
            .map(|i| format!("{}:{}", k.value(i), v.value(i)))
            .collect()
    }

    fn slots_of(side: &SideRows, k: i64) -> Vec<u32> {
        let mut out = Vec::new();
        if let Some(id) = side.key_id(k.to_string().as_bytes()) {
            side.slots_of(id, &mut out);
        }
        out
    }

    #[test]
    fn rows_are_found_by_key_newest_first_and_gathered() {
        let mut side = SideRows::new(schema(), false, true);
        insert(&mut side, &[(1, "a"), (2, "b")]);
        insert(&mut side, &[(1, "c")]);
        // The two batches were merged (both small).
        assert_eq!(side.batches.len(), 1);
        assert_eq!(show(&side, &slots_of(&side, 1)), ["1:c", "1:a"]);
        assert_eq!(show(&side, &slots_of(&side, 2)), ["2:b"]);
        assert!(slots_of(&side, 3).is_empty());
        assert_eq!(side.live_rows(), 3);
    }

    #[test]
    fn large_batches_are_kept_as_they_came_and_gathered_across() {
        let mut side = SideRows::new(schema(), false, false);
        let rows: Vec<(i64, String)> = (0..3 * KEEP_ROWS as i64)
            .map(|i| (i % 5, format!("v{i}")))
            .collect();
        let refs: Vec<(i64, &str)> = rows.iter().map(|(k, v)| (*k, v.as_str())).collect();
        for chunk in refs.chunks(KEEP_ROWS) {
            insert(&mut side, chunk);
        }
        assert_eq!(side.batches_len(), 3);
        // Slots of the last and the first batch, in that order.
        let last = 3 * KEEP_ROWS as u32 - 1;
        assert_eq!(
            show(&side, &[last, 0, last - 1]),
            [
                format!("{}:v{last}", last % 5),
                "0:v0".to_string(),
                format!("{}:v{}", (last - 1) % 5, last - 1)
            ]
        );
    }

    #[test]
    fn a_retraction_finds_its_row_by_hash_and_value() {
        let mut side = SideRows::new(schema(), false, true);
        let slots = insert(&mut side, &[(1, "a"), (1, "b")]);
        let key = side.key_id(b"1").unwrap();
        // Same hash (1) for both: the value decides.
        let found = side
            .find(key, 1, |s| Ok(show(&side, &[s]) == ["1:a"]))
            .unwrap();
        assert_eq!(found, Some(slots[0]));
        side.kill(slots[0]);
        assert_eq!(show(&side, &slots_of(&side, 1)), ["1:b"]);
        assert_eq!(side.find(key, 1, |_| Ok(false)).unwrap(), None);
        assert_eq!(side.find(key, 7, |_| Ok(true)).unwrap(), None);
    }

    #[test]
    fn compaction_keeps_live_rows_keys_and_counts() {
        let mut side = SideRows::new(schema(), true, false);
        let rows: Vec<(i64, String)> = (0..10_000).map(|i| (i % 7, format!("v{i}"))).collect();
        let refs: Vec<(i64, &str)> = rows.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let slots = insert(&mut side, &refs);
        for (i, slot) in slots.iter().enumerate() {
            side.set_matches(*slot, i as u64, i as u64);
            if i % 10 != 3 {
                side.kill(*slot);
            }
        }
        let moved = side.maybe_compact().unwrap().expect("compacted");
        assert_eq!(side.live_rows(), 1_000);
        assert_eq!(moved[3], 0);
        assert_eq!(moved[4], NIL);
        assert_eq!(moved[13], 1);
        let first = slots_of(&side, 3);
        assert_eq!(first.len(), 143);
        // Newest first, values and per-row state kept.
        assert_eq!(show(&side, &first[..2]), ["3:v9943", "3:v9873"]);
        assert_eq!(side.matches(first[0]), 9943);
        assert_eq!(side.written_ms(first[0]), 9943);
        // Below the threshold nothing moves.
        assert!(side.maybe_compact().unwrap().is_none());
    }

    #[test]
    fn a_shared_key_index_numbers_keys_once_and_drops_the_unwanted() {
        let mut index = KeyIndex::default();
        let a = index.get_or_insert(b"a");
        let b = index.get_or_insert(b"bb");
        assert_eq!((a, b, index.get_or_insert(b"a")), (0, 1, 0));
        assert_eq!(index.get(b"c"), None);
        // Two sides filing rows under the shared ids.
        let mut left = SideRows::new(schema(), false, false).with_shared_keys();
        let first = left.append(batch(&[(1, "x"), (2, "y")])).unwrap();
        left.activate(first, b, 0, 0, 0);
        left.activate(first + 1, a, 0, 0, 0);
        assert!(left.has_live_key(a) && left.has_live_key(b));
        left.kill(first + 1);
        assert!(!left.has_live_key(a));
        // Dropping `a` renumbers `bb` to 0.
        let (fresh, new_id) = index.retain(|k| left.has_live_key(k));
        assert_eq!(new_id, [NIL, 0]);
        assert_eq!((fresh.len(), fresh.bytes(0)), (1, &b"bb"[..]));
        left.renumber_keys(&new_id);
        let mut slots = Vec::new();
        left.slots_of(0, &mut slots);
        assert_eq!(show(&left, &slots), ["1:x"]);
    }

    #[test]
    fn the_key_index_grows_and_numbers_batches_of_keys() {
        let mut index = KeyIndex::default();
        let keys: Vec<String> = (0..5_000).map(|i| format!("key{i}")).collect();
        for (i, k) in keys.iter().enumerate().take(3_000) {
            assert_eq!(index.get_or_insert(k.as_bytes()), i as u32);
        }
        // A batch of known and new keys, one repeated.
        let batch: Vec<&[u8]> = [2_999, 3_000, 17, 3_000, 4_999]
            .iter()
            .map(|i| keys[*i].as_bytes())
            .collect();
        assert_eq!(
            index.get_or_insert_many(&batch),
            [2_999, 3_000, 17, 3_000, 3_001]
        );
        assert_eq!(index.len(), 3_002);
        assert_eq!(index.get(keys[4_999].as_bytes()), Some(3_001));
        assert_eq!(index.get(keys[4_000].as_bytes()), None);
        assert_eq!(index.bytes(17), keys[17].as_bytes());
        // Keeping the even keys renumbers them; the kept ones are found.
        let (kept, new_id) = index.retain(|k| k % 2 == 0);
        assert_eq!(kept.len(), 1_501);
        assert_eq!((new_id[4], new_id[5]), (2, NIL));
        assert_eq!(kept.get(keys[2_998].as_bytes()), Some(1_499));
        assert_eq!(kept.get(keys[17].as_bytes()), None);
    }

    #[test]
    fn expiry_by_write_time_frees_rows() {
        let mut side = SideRows::new(schema(), true, false);
        let slots = insert(&mut side, &[(1, "a"), (1, "b"), (2, "c")]);
        side.set_matches(slots[1], 1, 50);
        let key = side.key_id(b"1").unwrap();
        side.expire_key(key, |w| w < 10);
        assert_eq!(show(&side, &slots_of(&side, 1)), ["1:b"]);
        side.expire_all(|w| w < 100);
        assert_eq!(side.live_rows(), 0);
    }

    #[test]
    fn killing_all_leaves_no_live_row_and_compacts_to_nothing() {
        let mut side = SideRows::new(schema(), false, false);
        let rows: Vec<(i64, String)> = (0..5_000).map(|i| (i % 3, format!("v{i}"))).collect();
        let refs: Vec<(i64, &str)> = rows.iter().map(|(k, v)| (*k, v.as_str())).collect();
        insert(&mut side, &refs);
        side.kill_all();
        assert_eq!(side.live_rows(), 0);
        assert!(slots_of(&side, 1).is_empty());
        let moved = side.maybe_compact().unwrap().expect("compacted");
        assert!(moved.iter().all(|m| *m == NIL));
        assert_eq!(side.batches_len(), 0);
        // Still usable afterwards.
        insert(&mut side, &[(1, "x")]);
        assert_eq!(show(&side, &slots_of(&side, 1)), ["1:x"]);
    }
}
