//! The writer: appends records into memory-mapped, preallocated segments.
//!
//! The appending thread (the gateway's) owns a [`Journal`]. In steady state
//! [`Journal::append`] serializes into a preallocated scratch buffer, copies
//! into the mapping and publishes the frame's length word: no allocation, no
//! lock, no system call. Everything slow — creating and pre-touching the
//! next segment, naming it, `msync` — is done by a [`Syncer`] (a cloneable
//! handle meant for a background thread, see [`Syncer::spawn`]) or, when no
//! syncer thread runs, inline at the rare points where it is needed.

use std::fs::{File, OpenOptions};
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use engine::{Event, Halt, Leg, Liquidation, Seq, Sink, UnixNanos};
use memmap2::{MmapOptions, MmapRaw};
use rkyv::ser::allocator::Arena;

use crate::error::{JournalError, Result};
use crate::format::{
    first_frame_offset, frame_crc, next_frame_offset, page_bytes, segment_file_name, SegmentHeader,
    FRAME_HEADER_BYTES, HEADER_BYTES, PREPARED_SUFFIX, SEGMENT_BYTES_MAX, SEGMENT_BYTES_MIN,
};
use crate::record::{InputRecord, JournalRecord, OutputBody, OutputRecord, SourceStream, Status};
use crate::recovery::{recover, sync_dir, RecoveryReport, Tail};

/// When appended records are made durable (`msync`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// Flush after this many records (0: not by count). With a syncer
    /// thread running the appender only wakes it; otherwise the appender
    /// flushes inline.
    pub every_records: u64,
    /// A syncer thread started by [`Syncer::spawn`] flushes at least this
    /// often.
    pub interval: Duration,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        FlushPolicy {
            every_records: 4096,
            interval: Duration::from_millis(5),
        }
    }
}

/// How a journal is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JournalOptions {
    /// Size of new segment files (a multiple of the page size, 64 KiB to
    /// 2 GiB). Existing segments keep the size they were created with.
    pub segment_bytes: u64,
    /// The first sequence of a new journal.
    pub first_seq: Seq,
    pub flush: FlushPolicy,
    /// Write-touch every page of a new segment when preparing it, so the
    /// appender never takes a page fault.
    pub pretouch: bool,
    /// On a corrupt record followed by valid data, cut the journal there
    /// (saving the cut bytes beside the segment) instead of refusing to open.
    pub truncate_after_corruption: bool,
}

impl Default for JournalOptions {
    fn default() -> Self {
        JournalOptions {
            segment_bytes: 64 << 20,
            first_seq: Seq(1),
            flush: FlushPolicy::default(),
            pretouch: true,
            truncate_after_corruption: false,
        }
    }
}

impl JournalOptions {
    fn validate(&self) -> Result<()> {
        if !(SEGMENT_BYTES_MIN..=SEGMENT_BYTES_MAX).contains(&self.segment_bytes) {
            return Err(JournalError::InvalidOptions(
                "segment_bytes must be 64 KiB ..= 2 GiB",
            ));
        }
        if !self.segment_bytes.is_multiple_of(page_bytes() as u64) {
            return Err(JournalError::InvalidOptions(
                "segment_bytes must be a multiple of the page size",
            ));
        }
        if self.first_seq.0 == 0 {
            return Err(JournalError::InvalidOptions("first_seq must be at least 1"));
        }
        Ok(())
    }
}

/// Counters of what the writer did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub records: u64,
    /// Frame bytes appended (headers, payloads, padding).
    pub bytes: u64,
    pub rolls: u64,
    /// Rolls that had to create the next segment themselves (no syncer
    /// had prepared one): a page-fault and syscall stall on the appender.
    pub inline_prepares: u64,
    /// Flushes the appender did itself (no syncer thread running).
    pub inline_flushes: u64,
    /// Times the serialization buffer had to grow (allocation).
    pub scratch_grows: u64,
}

/// A segment being (or having been) written, shared with the syncer.
struct LiveSegment {
    map: MmapRaw,
    capacity: usize,
    /// End of the last whole payload written.
    written_end: AtomicUsize,
    /// Sequence of the last record written (0: none in this segment).
    last_seq: AtomicU64,
    flushed_end: AtomicUsize,
    /// No more records will be written here.
    sealed: AtomicBool,
}

/// A created, preallocated and pre-touched segment file without a header.
struct Prepared {
    path: PathBuf,
    map: MmapRaw,
}

#[derive(Default)]
struct State {
    /// Segments with data not yet flushed, oldest first (the current one
    /// always included).
    unflushed: Vec<Arc<LiveSegment>>,
    /// Ready segments, at most [`PREPARED_AHEAD`].
    prepared: Vec<Prepared>,
    /// Started prepared files to give their final names.
    renames: Vec<(PathBuf, PathBuf)>,
    /// Mappings the appender let go of: unmapped by the syncer.
    retired: Vec<Arc<LiveSegment>>,
    background_error: Option<String>,
}

struct Shared {
    dir: PathBuf,
    segment_bytes: u64,
    pretouch: bool,
    state: Mutex<State>,
    /// Serializes flushes (the syncer's and the appender's).
    flush_lock: Mutex<()>,
    durable_seq: AtomicU64,
    prepared_count: AtomicU64,
    /// The syncer's flushing thread.
    waker: OnceLock<Thread>,
    /// The syncer's preparing thread.
    preparer: OnceLock<Thread>,
    syncer_running: AtomicBool,
    closed: AtomicBool,
    _lock_file: File,
}

/// Segments kept created and pre-touched ahead of the appender.
pub const PREPARED_AHEAD: usize = 2;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Creates and preallocates a segment file (no header); maps it with
    /// populate and write-touches every page if `pretouch`.
    fn prepare_file(&self, pretouch: bool) -> Result<Prepared> {
        let len = self.segment_bytes;
        let (path, file) = loop {
            let n = self.prepared_count.fetch_add(1, Ordering::Relaxed);
            let path = self
                .dir
                .join(format!("{}-{n}{PREPARED_SUFFIX}", std::process::id()));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => break (path, file),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(JournalError::Io { path, source: e }),
            }
        };
        let result = (|| {
            file.set_len(len).map_err(JournalError::io(&path))?;
            allocate(&file, len).map_err(JournalError::io(&path))?;
            let map = map_segment(&file, len, pretouch).map_err(JournalError::io(&path))?;
            if pretouch {
                pretouch_pages(&map, 0);
            }
            Ok(map)
        })();
        match result {
            Ok(map) => Ok(Prepared { path, map }),
            Err(e) => {
                let _ = std::fs::remove_file(&path);
                Err(e)
            }
        }
    }

    /// Prepares segments until [`PREPARED_AHEAD`] are ready; true if it
    /// made any.
    fn prepare_next(&self) -> Result<bool> {
        let mut made = false;
        while !self.closed.load(Ordering::Acquire) && self.state().prepared.len() < PREPARED_AHEAD {
            let prepared = self.prepare_file(self.pretouch)?;
            self.state().prepared.push(prepared);
            made = true;
        }
        Ok(made)
    }

    /// Flushes every segment with unflushed data (oldest first), names
    /// started segments, and returns the durable sequence.
    fn flush(&self) -> Result<u64> {
        let _flushing = lock(&self.flush_lock);
        let (segments, renames, retired) = {
            let mut state = self.state();
            (
                state.unflushed.clone(),
                std::mem::take(&mut state.renames),
                std::mem::take(&mut state.retired),
            )
        };
        let mut durable = self.durable_seq.load(Ordering::Acquire);
        for segment in &segments {
            let last = segment.last_seq.load(Ordering::Acquire);
            let end = segment.written_end.load(Ordering::Acquire);
            let from = segment.flushed_end.load(Ordering::Relaxed);
            if end > from {
                segment
                    .map
                    .flush_range(from, end - from)
                    .map_err(JournalError::io(&self.dir))?;
                segment.flushed_end.store(end, Ordering::Release);
            }
            durable = durable.max(last);
        }
        if !renames.is_empty() {
            for (from, to) in &renames {
                std::fs::rename(from, to).map_err(JournalError::io(to))?;
            }
            sync_dir(&self.dir)?;
        }
        self.durable_seq.store(durable, Ordering::Release);
        self.state().unflushed.retain(|s| {
            !(s.sealed.load(Ordering::Acquire)
                && s.flushed_end.load(Ordering::Acquire) >= s.written_end.load(Ordering::Acquire))
        });
        // The last references to retired mappings die here, off the
        // appending thread.
        drop(segments);
        drop(retired);
        Ok(durable)
    }

    fn maintain(&self) -> Result<()> {
        self.prepare_next()?;
        self.flush()?;
        Ok(())
    }

    fn wake_syncer(&self) -> bool {
        if !self.syncer_running.load(Ordering::Acquire) {
            return false;
        }
        match self.waker.get() {
            Some(thread) => {
                thread.unpark();
                true
            }
            None => false,
        }
    }

    /// Asks the preparer thread for the next segment (no-op without one).
    fn wake_preparer(&self) {
        if self.syncer_running.load(Ordering::Acquire) {
            if let Some(thread) = self.preparer.get() {
                thread.unpark();
            }
        }
    }

    fn remove_prepared(&self) {
        let prepared = std::mem::take(&mut self.state().prepared);
        for prepared in prepared {
            drop(prepared.map);
            let _ = std::fs::remove_file(&prepared.path);
        }
    }
}

/// Reserves the file's blocks so a full disk is an error here, not a
/// SIGBUS on a write into the mapping.
fn allocate(file: &File, len: u64) -> std::io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| std::io::Error::other("segment too large"))?;
    // SAFETY: a valid open descriptor; fallocate has no memory preconditions.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc == 0 {
        return Ok(());
    }
    let error = std::io::Error::last_os_error();
    match error.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::ENOSYS) => Ok(()),
        _ => Err(error),
    }
}

fn map_segment(file: &File, len: u64, populate: bool) -> std::io::Result<MmapRaw> {
    let len = usize::try_from(len).map_err(|_| std::io::Error::other("segment too large"))?;
    let mut options = MmapOptions::new();
    options.len(len);
    if populate {
        options.populate();
    }
    options.map_raw(file)
}

/// Writes each page from `from` on (its own value back), so every page is
/// resident and writable before the appender reaches it.
fn pretouch_pages(map: &MmapRaw, from: usize) {
    let page = page_bytes();
    let base = map.as_mut_ptr();
    let mut at = from - from % page;
    while at < map.len() {
        // SAFETY: `at` is inside the mapping; rewriting a byte's own value
        // is harmless even over data (this process is the only writer).
        unsafe {
            let p = base.add(at);
            p.write_volatile(p.read_volatile());
        }
        at += page;
    }
}

fn lock_dir(dir: &Path) -> Result<File> {
    let path = dir.join("LOCK");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(JournalError::io(&path))?;
    // SAFETY: a valid open descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() == Some(libc::EWOULDBLOCK) {
            return Err(JournalError::Locked {
                path: dir.to_path_buf(),
            });
        }
        return Err(JournalError::Io {
            path,
            source: error,
        });
    }
    Ok(file)
}

/// An append-only journal of `R` records, opened for writing (one writer
/// per directory, enforced with a lock file).
pub struct Journal<R: JournalRecord> {
    shared: Arc<Shared>,
    current: Arc<LiveSegment>,
    /// Where the next frame goes in the current segment.
    offset: usize,
    next_seq: u64,
    first_frame: usize,
    payload_bytes_max: usize,
    scratch: Vec<u8>,
    arena: Arena,
    record_scratch: R::Scratch,
    since_flush: u64,
    every_records: u64,
    /// Past this offset the syncer is woken to prepare the next segment.
    nudge_at: usize,
    nudged: bool,
    stats: WriterStats,
    recovery: RecoveryReport,
    _record: PhantomData<fn(R)>,
}

/// The input journal (the truth).
pub type InputJournal = Journal<InputRecord>;
/// The output journal (decisions and status messages).
pub type OutputJournal = Journal<OutputRecord>;

impl<R: JournalRecord> Journal<R> {
    /// Opens (creating it if needed) the journal in `dir`, recovering it:
    /// a torn tail is cut (see [`recovery`](Self::recovery)), a corruption
    /// followed by valid data is an error unless
    /// `options.truncate_after_corruption`.
    ///
    /// # Errors
    /// I/O errors; [`JournalError::Locked`] if another writer has it open;
    /// every structural error of the directory (bad magic or version,
    /// wrong record kind, missing segment, short segment, corruption).
    pub fn open(dir: impl AsRef<Path>, options: JournalOptions) -> Result<Self> {
        options.validate()?;
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(JournalError::io(dir))?;
        let lock_file = lock_dir(dir)?;
        let (recovery, tail) = recover::<R>(dir, options.truncate_after_corruption)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            segment_bytes: options.segment_bytes,
            pretouch: options.pretouch,
            state: Mutex::new(State::default()),
            flush_lock: Mutex::new(()),
            durable_seq: AtomicU64::new(0),
            prepared_count: AtomicU64::new(0),
            waker: OnceLock::new(),
            preparer: OnceLock::new(),
            syncer_running: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            _lock_file: lock_file,
        });
        let (current, offset, next_seq) = match tail {
            Some(tail) => open_tail(&shared, &tail)?,
            None => create_first::<R>(&shared, options.first_seq.0)?,
        };
        shared.durable_seq.store(next_seq - 1, Ordering::Release);
        shared.state().unflushed.push(current.clone());
        let first_frame = first_frame_offset(R::PAYLOAD_ALIGN);
        let payload_bytes_max = usize::try_from(options.segment_bytes).unwrap_or(usize::MAX)
            - first_frame
            - FRAME_HEADER_BYTES;
        let nudge_at = current.capacity / 2;
        Ok(Journal {
            shared,
            current,
            offset,
            next_seq,
            first_frame,
            payload_bytes_max,
            scratch: vec![0; payload_bytes_max.min(4096)],
            arena: Arena::with_capacity(4096),
            record_scratch: R::Scratch::default(),
            since_flush: 0,
            every_records: options.flush.every_records,
            nudge_at,
            nudged: false,
            stats: WriterStats::default(),
            recovery,
            _record: PhantomData,
        })
    }

    /// Appends `record`, whose `seq` must be [`next_seq`](Self::next_seq).
    ///
    /// Steady state: no allocation, no lock, no system call. A roll to the
    /// next segment takes a lock briefly; it also creates the segment
    /// inline if no syncer prepared one. Every `every_records` records the
    /// syncer thread is woken (or, with none running, the journal is
    /// flushed inline).
    ///
    /// # Errors
    /// [`JournalError::SequenceMismatch`], [`JournalError::RecordTooLarge`],
    /// and I/O errors of the slow paths (roll, inline flush).
    pub fn append(&mut self, record: &R) -> Result<Seq> {
        let seq = record.seq().0;
        if seq != self.next_seq {
            return Err(JournalError::SequenceMismatch {
                expected: self.next_seq,
                found: seq,
            });
        }
        let len = self.serialize(record)?;
        if self.offset + FRAME_HEADER_BYTES + len > self.current.capacity {
            self.roll()?;
        }
        let frame = self.offset;
        let payload = &self.scratch[..len];
        let len_word = len as u32;
        let crc = frame_crc(len_word, payload);
        let base = self.current.map.as_mut_ptr();
        // SAFETY: the frame lies inside the mapping (checked above; a roll
        // guarantees a fresh segment fits any record up to
        // `payload_bytes_max`), above every committed frame, and only this
        // writer touches it. The length word is 8-byte aligned (mappings
        // are page aligned, frames 8-aligned) and published last with
        // release ordering, so no observer — another thread, a process
        // after this one is killed — sees the length before the payload and
        // CRC.
        unsafe {
            std::ptr::copy_nonoverlapping(
                payload.as_ptr(),
                base.add(frame + FRAME_HEADER_BYTES),
                len,
            );
            base.add(frame + 4).cast::<u32>().write(crc.to_le());
            AtomicU32::from_ptr(base.add(frame).cast::<u32>())
                .store(len_word.to_le(), Ordering::Release);
        }
        let next = next_frame_offset(frame, len, R::PAYLOAD_ALIGN);
        self.offset = next;
        self.current
            .written_end
            .store(frame + FRAME_HEADER_BYTES + len, Ordering::Release);
        self.current.last_seq.store(seq, Ordering::Release);
        self.next_seq += 1;
        self.stats.records += 1;
        self.stats.bytes += (next - frame) as u64;
        self.after_append()?;
        Ok(Seq(seq))
    }

    fn serialize(&mut self, record: &R) -> Result<usize> {
        loop {
            if let Some(len) = record.serialize_into(&mut self.scratch, &mut self.arena) {
                return Ok(len);
            }
            if self.scratch.len() >= self.payload_bytes_max {
                return Err(JournalError::RecordTooLarge {
                    len: self.scratch.len() + 1,
                    segment_bytes: self.shared.segment_bytes,
                });
            }
            let grown = (self.scratch.len() * 2).min(self.payload_bytes_max);
            self.scratch.resize(grown, 0);
            self.stats.scratch_grows += 1;
        }
    }

    fn after_append(&mut self) -> Result<()> {
        self.since_flush += 1;
        if self.every_records != 0 && self.since_flush >= self.every_records {
            self.since_flush = 0;
            if !self.shared.wake_syncer() {
                self.stats.inline_flushes += 1;
                self.shared.flush()?;
            }
        }
        if !self.nudged && self.offset >= self.nudge_at {
            self.nudged = true;
            self.shared.wake_preparer();
        }
        Ok(())
    }

    #[cold]
    fn roll(&mut self) -> Result<()> {
        let prepared = {
            let mut state = self.shared.state();
            (!state.prepared.is_empty()).then(|| state.prepared.remove(0))
        };
        let prepared = match prepared {
            Some(prepared) => prepared,
            None => {
                // Nothing ready: create one without pre-touching (about a
                // millisecond instead of a whole segment's page faults up
                // front; the pages then fault in as they are written).
                self.stats.inline_prepares += 1;
                self.shared.prepare_file(false)?
            }
        };
        let header = SegmentHeader::new(
            R::KIND,
            R::PAYLOAD_ALIGN,
            self.shared.segment_bytes,
            self.next_seq,
        )
        .encode();
        // SAFETY: the prepared mapping is at least a header long and not
        // yet visible to anyone else.
        unsafe {
            std::ptr::copy_nonoverlapping(header.as_ptr(), prepared.map.as_mut_ptr(), HEADER_BYTES);
        }
        let capacity = prepared.map.len();
        let live = Arc::new(LiveSegment {
            map: prepared.map,
            capacity,
            written_end: AtomicUsize::new(self.first_frame),
            last_seq: AtomicU64::new(0),
            flushed_end: AtomicUsize::new(0),
            sealed: AtomicBool::new(false),
        });
        self.current.sealed.store(true, Ordering::Release);
        let old = std::mem::replace(&mut self.current, live.clone());
        {
            let mut state = self.shared.state();
            state.unflushed.push(live);
            state.renames.push((
                prepared.path,
                self.shared.dir.join(segment_file_name(self.next_seq)),
            ));
            state.retired.push(old);
        }
        self.offset = self.first_frame;
        self.nudge_at = capacity / 2;
        self.nudged = false;
        self.stats.rolls += 1;
        self.shared.wake_preparer();
        if !self.shared.wake_syncer() {
            self.stats.inline_flushes += 1;
            self.shared.flush()?;
        }
        Ok(())
    }

    /// Flushes (msync) everything appended so far and names started
    /// segments; returns the durable sequence. A system call: not for the
    /// hot path when a syncer thread can do it.
    ///
    /// # Errors
    /// I/O errors of msync, rename or the directory fsync.
    pub fn flush(&mut self) -> Result<Seq> {
        self.shared.flush().map(Seq)
    }

    /// Creates and pre-touches the next segment now, if none is ready.
    ///
    /// # Errors
    /// I/O errors creating or mapping the file.
    pub fn prepare_next(&self) -> Result<bool> {
        self.shared.prepare_next()
    }

    /// A handle for the slow work, to give to another thread.
    pub fn syncer(&self) -> Syncer {
        Syncer {
            shared: self.shared.clone(),
        }
    }

    /// The sequence the next record must have.
    pub fn next_seq(&self) -> Seq {
        Seq(self.next_seq)
    }

    /// The last appended sequence, if any.
    pub fn last_seq(&self) -> Option<Seq> {
        (self.next_seq > 1).then(|| Seq(self.next_seq - 1))
    }

    /// Every record up to this sequence has been flushed.
    pub fn durable_seq(&self) -> Seq {
        Seq(self.shared.durable_seq.load(Ordering::Acquire))
    }

    pub fn stats(&self) -> WriterStats {
        self.stats
    }

    /// What recovery found and did when the journal was opened.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The first error a background syncer thread hit, if any (it stops
    /// then; the appender falls back to inline flushing).
    pub fn background_error(&self) -> Option<String> {
        self.shared.state().background_error.clone()
    }

    /// Flushes and closes the journal, removing an unused prepared file.
    ///
    /// # Errors
    /// The final flush's I/O errors.
    pub fn close(self) -> Result<Seq> {
        self.shared.closed.store(true, Ordering::Release);
        let durable = self.shared.flush();
        self.shared.remove_prepared();
        durable.map(Seq)
    }
}

impl<R: JournalRecord> Drop for Journal<R> {
    fn drop(&mut self) {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            let _ = self.shared.flush();
            self.shared.remove_prepared();
        }
        if let Some(thread) = self.shared.waker.get() {
            thread.unpark();
        }
        if let Some(thread) = self.shared.preparer.get() {
            thread.unpark();
        }
    }
}

fn open_tail(shared: &Shared, tail: &Tail) -> Result<(Arc<LiveSegment>, usize, u64)> {
    let path = &tail.path;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(JournalError::io(path))?;
    let len = file.metadata().map_err(JournalError::io(path))?.len();
    if len < tail.segment_bytes {
        file.set_len(tail.segment_bytes)
            .map_err(JournalError::io(path))?;
    }
    allocate(&file, tail.segment_bytes).map_err(JournalError::io(path))?;
    let map =
        map_segment(&file, tail.segment_bytes, shared.pretouch).map_err(JournalError::io(path))?;
    if shared.pretouch {
        pretouch_pages(&map, tail.offset);
    }
    file.sync_all().map_err(JournalError::io(path))?;
    let capacity = map.len();
    let segment = LiveSegment {
        map,
        capacity,
        written_end: AtomicUsize::new(tail.offset),
        last_seq: AtomicU64::new(tail.next_seq - 1),
        flushed_end: AtomicUsize::new(tail.offset),
        sealed: AtomicBool::new(false),
    };
    Ok((Arc::new(segment), tail.offset, tail.next_seq))
}

fn create_first<R: JournalRecord>(
    shared: &Shared,
    first_seq: u64,
) -> Result<(Arc<LiveSegment>, usize, u64)> {
    let prepared = shared.prepare_file(shared.pretouch)?;
    let header =
        SegmentHeader::new(R::KIND, R::PAYLOAD_ALIGN, shared.segment_bytes, first_seq).encode();
    // SAFETY: the mapping is at least a header long and ours alone.
    unsafe {
        std::ptr::copy_nonoverlapping(header.as_ptr(), prepared.map.as_mut_ptr(), HEADER_BYTES);
    }
    prepared
        .map
        .flush_range(0, HEADER_BYTES)
        .map_err(JournalError::io(&prepared.path))?;
    let named = shared.dir.join(segment_file_name(first_seq));
    std::fs::rename(&prepared.path, &named).map_err(JournalError::io(&named))?;
    sync_dir(&shared.dir)?;
    let first_frame = first_frame_offset(R::PAYLOAD_ALIGN);
    let capacity = prepared.map.len();
    let segment = LiveSegment {
        map: prepared.map,
        capacity,
        written_end: AtomicUsize::new(first_frame),
        last_seq: AtomicU64::new(0),
        flushed_end: AtomicUsize::new(first_frame),
        sealed: AtomicBool::new(false),
    };
    Ok((Arc::new(segment), first_frame, first_seq))
}

impl Journal<InputRecord> {
    /// Appends an input event under the next sequence.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn append_event(
        &mut self,
        recv_ts: UnixNanos,
        src_stream: SourceStream,
        src_seq: u64,
        event: &Event,
    ) -> Result<Seq> {
        let record = InputRecord {
            seq: Seq(self.next_seq),
            recv_ts_ns: recv_ts,
            src_stream,
            src_seq,
            event: *event,
        };
        self.append(&record)
    }
}

impl Journal<OutputRecord> {
    /// Appends a halt produced by input `input_seq`.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn append_halt(&mut self, input_seq: Seq, halt: &Halt) -> Result<Seq> {
        let record = OutputRecord {
            seq: Seq(self.next_seq),
            input_seq,
            output: OutputBody::Halt(*halt),
        };
        self.append(&record)
    }

    /// Appends a liquidation and its legs produced by input `input_seq`.
    /// The legs are copied into a reused buffer: no allocation once it has
    /// grown to the largest leg count seen.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn append_liquidation(
        &mut self,
        input_seq: Seq,
        liquidation: &Liquidation,
        legs: &[Leg],
    ) -> Result<Seq> {
        let mut buffer = std::mem::take(&mut self.record_scratch);
        buffer.clear();
        buffer.extend_from_slice(legs);
        let record = OutputRecord {
            seq: Seq(self.next_seq),
            input_seq,
            output: OutputBody::Liquidation {
                liquidation: *liquidation,
                legs: buffer,
            },
        };
        let result = self.append(&record);
        if let OutputBody::Liquidation { legs, .. } = record.output {
            self.record_scratch = legs;
        }
        result
    }

    /// Appends a status message.
    ///
    /// # Errors
    /// As [`append`](Self::append).
    pub fn append_status(&mut self, status: &Status) -> Result<Seq> {
        let record = OutputRecord {
            seq: Seq(self.next_seq),
            input_seq: status.seq,
            output: OutputBody::Status(*status),
        };
        self.append(&record)
    }

    /// A [`Sink`] that journals the engine's outputs for input `input_seq`.
    pub fn sink(&mut self, input_seq: Seq) -> OutputSink<'_> {
        OutputSink {
            journal: self,
            input_seq,
            error: None,
        }
    }
}

/// Journals each output the engine emits; the first error is kept (a
/// `Sink` cannot fail) and later outputs are dropped.
pub struct OutputSink<'a> {
    journal: &'a mut OutputJournal,
    input_seq: Seq,
    error: Option<JournalError>,
}

impl OutputSink<'_> {
    /// The first append error, if any.
    ///
    /// # Errors
    /// The first error an append hit.
    pub fn finish(self) -> Result<()> {
        self.error.map_or(Ok(()), Err)
    }
}

impl Sink for OutputSink<'_> {
    fn halt(&mut self, halt: &Halt) {
        if self.error.is_none() {
            if let Err(e) = self.journal.append_halt(self.input_seq, halt) {
                self.error = Some(e);
            }
        }
    }

    fn liquidation(&mut self, liquidation: &Liquidation, legs: &[Leg]) {
        if self.error.is_none() {
            if let Err(e) = self
                .journal
                .append_liquidation(self.input_seq, liquidation, legs)
            {
                self.error = Some(e);
            }
        }
    }
}

/// The slow half of a journal, for a background thread: prepares the next
/// segment ahead of need, flushes, names started segments, unmaps retired
/// ones. Cloneable and `Send`; it holds no reference to the appender.
#[derive(Clone)]
pub struct Syncer {
    shared: Arc<Shared>,
}

impl Syncer {
    /// Flushes everything appended so far; returns the durable sequence.
    ///
    /// # Errors
    /// I/O errors of msync, rename or the directory fsync.
    pub fn flush(&self) -> Result<Seq> {
        self.shared.flush().map(Seq)
    }

    /// Creates and pre-touches the next segment if none is ready; true if
    /// it made one.
    ///
    /// # Errors
    /// I/O errors creating or mapping the file.
    pub fn prepare_next(&self) -> Result<bool> {
        self.shared.prepare_next()
    }

    /// [`prepare_next`](Self::prepare_next), then [`flush`](Self::flush).
    ///
    /// # Errors
    /// As those two.
    pub fn maintain(&self) -> Result<()> {
        self.shared.maintain()
    }

    pub fn durable_seq(&self) -> Seq {
        Seq(self.shared.durable_seq.load(Ordering::Acquire))
    }

    /// Starts the background work on two threads: one flushes every
    /// `interval` and whenever the appender wakes it (every `every_records`
    /// records, at a roll); the other prepares the next segment as soon as
    /// the appender rolls into a fresh one (so preparing never waits behind
    /// a slow msync). One per journal.
    ///
    /// # Errors
    /// [`JournalError::SyncerRunning`] if one was spawned before; an I/O
    /// error if a thread cannot be started.
    pub fn spawn(self, interval: Duration) -> Result<SyncerThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let shared = self.shared.clone();
        let flusher = spawn_gated(&shared, "journal-flusher", stop.clone(), move |s, stop| {
            run_flusher(s, stop, interval)
        })?;
        let preparer = spawn_gated(&shared, "journal-preparer", stop.clone(), move |s, stop| {
            run_preparer(s, stop, interval)
        });
        let preparer = match preparer {
            Ok(preparer) => preparer,
            Err(e) => {
                let _ = flusher.1.send(false);
                let _ = flusher.0.join();
                return Err(e);
            }
        };
        let registered = shared.waker.set(flusher.0.thread().clone()).is_ok()
            && shared.preparer.set(preparer.0.thread().clone()).is_ok();
        if !registered {
            for (handle, go) in [flusher, preparer] {
                let _ = go.send(false);
                let _ = handle.join();
            }
            return Err(JournalError::SyncerRunning);
        }
        shared.syncer_running.store(true, Ordering::Release);
        let _ = flusher.1.send(true);
        let _ = preparer.1.send(true);
        Ok(SyncerThread {
            stop,
            shared,
            handles: vec![flusher.0, preparer.0],
        })
    }
}

type Gated = (JoinHandle<Result<()>>, std::sync::mpsc::Sender<bool>);

/// Spawns a thread that waits to learn whether it is the journal's.
fn spawn_gated(
    shared: &Arc<Shared>,
    name: &str,
    stop: Arc<AtomicBool>,
    body: impl FnOnce(&Shared, &AtomicBool) -> Result<()> + Send + 'static,
) -> Result<Gated> {
    let (go_tx, go_rx) = std::sync::mpsc::channel::<bool>();
    let thread_shared = shared.clone();
    let handle = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if go_rx.recv() == Ok(true) {
                let result = body(&thread_shared, &stop);
                if let Err(e) = &result {
                    thread_shared
                        .state()
                        .background_error
                        .get_or_insert_with(|| e.to_string());
                    thread_shared.syncer_running.store(false, Ordering::Release);
                }
                result
            } else {
                Ok(())
            }
        })
        .map_err(JournalError::io(&shared.dir))?;
    Ok((handle, go_tx))
}

fn stopping(shared: &Shared, stop: &AtomicBool) -> bool {
    stop.load(Ordering::Acquire) || shared.closed.load(Ordering::Acquire)
}

fn run_flusher(shared: &Shared, stop: &AtomicBool, interval: Duration) -> Result<()> {
    while !stopping(shared, stop) {
        shared.flush()?;
        std::thread::park_timeout(interval);
    }
    shared.syncer_running.store(false, Ordering::Release);
    shared.flush().map(|_| ())
}

fn run_preparer(shared: &Shared, stop: &AtomicBool, interval: Duration) -> Result<()> {
    while !stopping(shared, stop) {
        shared.prepare_next()?;
        std::thread::park_timeout(interval.max(Duration::from_millis(50)));
    }
    Ok(())
}

/// The running syncer threads. Stop them with [`stop`](Self::stop) (dropping it
/// stops it too, ignoring errors).
pub struct SyncerThread {
    stop: Arc<AtomicBool>,
    shared: Arc<Shared>,
    handles: Vec<JoinHandle<Result<()>>>,
}

impl SyncerThread {
    /// Stops the thread after a last flush.
    ///
    /// # Errors
    /// The error that stopped the thread, or its final flush's.
    pub fn stop(mut self) -> Result<()> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Release);
        let mut outcome = Ok(());
        for handle in self.handles.drain(..) {
            handle.thread().unpark();
            let result = match handle.join() {
                Ok(result) => result,
                Err(_) => Err(JournalError::Background("syncer thread panicked".into())),
            };
            if outcome.is_ok() {
                outcome = result;
            }
        }
        outcome
    }

    pub fn durable_seq(&self) -> Seq {
        Seq(self.shared.durable_seq.load(Ordering::Acquire))
    }
}

impl Drop for SyncerThread {
    fn drop(&mut self) {
        let _ = self.stop_inner();
    }
}
