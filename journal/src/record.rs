//! The two record types a journal holds, and how each is archived.
//!
//! A journal is generic over [`JournalRecord`]; the trait is implemented for
//! [`InputRecord`] (the input journal: the truth) and [`OutputRecord`] (the
//! output journal: the engine's decisions and the gateway's status messages).
//! Each record carries its own journal sequence number, which the reader
//! checks against its position.

use core::mem::{align_of, size_of};

use engine::{Event, Halt, Leg, Liquidation, Seq, UnixNanos};
use rkyv::{
    rancor::Failure,
    ser::{allocator::Arena, writer::Buffer},
    Archive, Deserialize, Serialize,
};

/// What a journal's segments hold (written in every segment header).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    Input = 1,
    Output = 2,
}

impl RecordKind {
    pub fn from_code(code: u8) -> Option<RecordKind> {
        match code {
            1 => Some(RecordKind::Input),
            2 => Some(RecordKind::Output),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RecordKind::Input => "input",
            RecordKind::Output => "output",
        }
    }
}

impl core::fmt::Display for RecordKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// The stream an input arrived on (PROTOCOL.md §4 `src_stream` codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum SourceStream {
    /// The daemon's configuration, journaled as the first events.
    Config = 0,
    MarketData = 1,
    Orders = 2,
    Admin = 3,
}

impl SourceStream {
    pub fn from_code(code: u8) -> Option<SourceStream> {
        match code {
            0 => Some(SourceStream::Config),
            1 => Some(SourceStream::MarketData),
            2 => Some(SourceStream::Orders),
            3 => Some(SourceStream::Admin),
            _ => None,
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    /// The JSONL name (PROTOCOL.md §5).
    pub fn name(self) -> &'static str {
        match self {
            SourceStream::Config => "config",
            SourceStream::MarketData => "md",
            SourceStream::Orders => "orders",
            SourceStream::Admin => "admin",
        }
    }

    /// The stream of a JSONL name (`md`, `orders`, `admin`, `config`).
    pub fn from_name(name: &str) -> Option<SourceStream> {
        [
            SourceStream::Config,
            SourceStream::MarketData,
            SourceStream::Orders,
            SourceStream::Admin,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }
}

impl ArchivedSourceStream {
    pub fn to_native(&self) -> SourceStream {
        match self {
            ArchivedSourceStream::Config => SourceStream::Config,
            ArchivedSourceStream::MarketData => SourceStream::MarketData,
            ArchivedSourceStream::Orders => SourceStream::Orders,
            ArchivedSourceStream::Admin => SourceStream::Admin,
        }
    }
}

/// One input event as journaled: the engine's event plus where and when it
/// arrived. `seq` is the journal sequence (1-based, dense).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct InputRecord {
    pub seq: Seq,
    /// Receive time on the gateway's clock (not the event's `ts`).
    pub recv_ts_ns: UnixNanos,
    pub src_stream: SourceStream,
    /// The message's MoldUDP64 sequence on its stream; 0 for configuration.
    pub src_seq: u64,
    pub event: Event,
}

/// The gateway's periodic status message (PROTOCOL.md §4 `S`): not an
/// engine output, but it takes its place in the outbound sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Status {
    /// Wall clock at sending.
    pub ts: UnixNanos,
    /// Last journaled input sequence.
    pub seq: Seq,
    pub accounts: u64,
    pub liquidating: u64,
    pub halted: u32,
}

/// What an output record holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub enum OutputBody {
    Halt(Halt),
    Liquidation {
        liquidation: Liquidation,
        legs: Vec<Leg>,
    },
    Status(Status),
}

/// One outbound message as journaled. `seq` is the output journal's own
/// sequence; `input_seq` the input that produced it (for a status: the last
/// journaled input).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Archive, Serialize, Deserialize)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct OutputRecord {
    pub seq: Seq,
    pub input_seq: Seq,
    pub output: OutputBody,
}

/// A record type a [`Journal`](crate::Journal) can hold.
///
/// Implemented for [`InputRecord`] and [`OutputRecord`]; the methods wrap
/// rkyv's low-level (allocation-free) API with concrete types.
pub trait JournalRecord: Sized + Send + 'static {
    /// The archived form, read in place from the mapping.
    type Archived: Sync + 'static;
    /// Reusable per-writer state for building records without allocating.
    type Scratch: Default + Send;

    const KIND: RecordKind;
    /// Payloads start at file offsets that are multiples of this (the
    /// archived type's alignment, at least 8). Written in the header.
    const PAYLOAD_ALIGN: usize;
    /// The smallest payload: the archived root.
    const PAYLOAD_BYTES_MIN: usize;

    /// This record's journal sequence.
    fn seq(&self) -> Seq;

    /// The sequence of an archived record.
    fn archived_seq(archived: &Self::Archived) -> Seq;

    /// Serializes into `buffer`; `None` when `buffer` is too small.
    fn serialize_into(&self, buffer: &mut [u8], arena: &mut Arena) -> Option<usize>;

    /// Validated zero-copy access (bytecheck); `None` when `bytes` is not a
    /// valid archive of this type (or is misaligned).
    fn access(bytes: &[u8]) -> Option<&Self::Archived>;

    /// Zero-copy access without validation.
    ///
    /// # Safety
    /// `bytes` must hold a valid archive of this type written by
    /// [`serialize_into`](Self::serialize_into), suitably aligned.
    unsafe fn access_unchecked(bytes: &[u8]) -> &Self::Archived;

    /// The owned record.
    fn deserialize(archived: &Self::Archived) -> Self;
}

macro_rules! impl_journal_record {
    ($ty:ty, $archived:ty, $scratch:ty, $kind:expr) => {
        impl JournalRecord for $ty {
            type Archived = $archived;
            type Scratch = $scratch;

            const KIND: RecordKind = $kind;
            const PAYLOAD_ALIGN: usize = if align_of::<$archived>() > 8 {
                align_of::<$archived>()
            } else {
                8
            };
            const PAYLOAD_BYTES_MIN: usize = size_of::<$archived>();

            fn seq(&self) -> Seq {
                self.seq
            }

            fn archived_seq(archived: &$archived) -> Seq {
                Seq(archived.seq.0.to_native())
            }

            fn serialize_into(&self, buffer: &mut [u8], arena: &mut Arena) -> Option<usize> {
                let written = rkyv::api::low::to_bytes_in_with_alloc::<_, _, Failure>(
                    self,
                    Buffer::from(buffer),
                    arena.acquire(),
                )
                .ok()?;
                Some(written.len())
            }

            fn access(bytes: &[u8]) -> Option<&$archived> {
                rkyv::api::low::access::<$archived, Failure>(bytes).ok()
            }

            unsafe fn access_unchecked(bytes: &[u8]) -> &$archived {
                // SAFETY: forwarded from the caller.
                unsafe { rkyv::access_unchecked::<$archived>(bytes) }
            }

            fn deserialize(archived: &$archived) -> $ty {
                // Every archived value of these types deserializes (no
                // fallible conversions, no shared pointers).
                match rkyv::api::low::deserialize::<$ty, Failure>(archived) {
                    Ok(value) => value,
                    Err(_) => unreachable!("rkyv deserialization of plain data is infallible"),
                }
            }
        }
    };
}

impl_journal_record!(InputRecord, ArchivedInputRecord, (), RecordKind::Input);
impl_journal_record!(
    OutputRecord,
    ArchivedOutputRecord,
    Vec<Leg>,
    RecordKind::Output
);

impl ArchivedInputRecord {
    /// The event, deserialized (a copy: every event type is `Copy`).
    pub fn to_event(&self) -> Event {
        match rkyv::api::low::deserialize::<Event, Failure>(&self.event) {
            Ok(event) => event,
            Err(_) => unreachable!("rkyv deserialization of plain data is infallible"),
        }
    }
}

// Pinned layouts: a change to an engine type, to rkyv's format or to its
// features (endianness, alignment) changes these and must bump
// FORMAT_VERSION. Values for rkyv 0.8, little-endian, aligned primitives.
/// Size of an archived [`InputRecord`]; every input payload is exactly this.
pub const INPUT_RECORD_ARCHIVED_BYTES: usize = 480;
/// Size of the fixed part (root) of an archived [`OutputRecord`]; legs are
/// stored before it.
pub const OUTPUT_RECORD_ARCHIVED_BYTES: usize = 128;
/// Size of one archived [`Leg`].
pub const LEG_ARCHIVED_BYTES: usize = 48;

const _: () = assert!(size_of::<ArchivedInputRecord>() == INPUT_RECORD_ARCHIVED_BYTES);
const _: () = assert!(align_of::<ArchivedInputRecord>() == 8);
const _: () = assert!(size_of::<ArchivedOutputRecord>() == OUTPUT_RECORD_ARCHIVED_BYTES);
const _: () = assert!(align_of::<ArchivedOutputRecord>() == 16);
const _: () = assert!(size_of::<engine::ArchivedLeg>() == LEG_ARCHIVED_BYTES);
const _: () = assert!(size_of::<ArchivedSourceStream>() == 1);
