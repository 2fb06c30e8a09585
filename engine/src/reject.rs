//! Why the engine refused an event. A rejection changes nothing: not the
//! clock, not a halt, not a cooldown (MARGIN.md §9).

use crate::types::{AccountId, AssetId, InstrumentId};

/// One documented variant per reason an event is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Reject {
    #[error("asset {0} is not defined")]
    UnknownAsset(AssetId),
    #[error("instrument {0} is not defined")]
    UnknownInstrument(InstrumentId),
    #[error("instrument {0} has no mark yet")]
    NoMark(InstrumentId),
    #[error("an index price for the quote asset (its price is 1)")]
    QuoteIndex,
    #[error("value out of range: {0}")]
    OutOfRange(&'static str),
    #[error("invalid definition: {0}")]
    InvalidDefinition(&'static str),
    #[error("capacity exceeded: {0}")]
    Capacity(&'static str),
    #[error("account {0} would exceed a value limit: {1}")]
    AccountLimit(AccountId, &'static str),
}

impl Reject {
    /// A short stable name, for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            Reject::UnknownAsset(_) => "unknown_asset",
            Reject::UnknownInstrument(_) => "unknown_instrument",
            Reject::NoMark(_) => "no_mark",
            Reject::QuoteIndex => "quote_index",
            Reject::OutOfRange(_) => "out_of_range",
            Reject::InvalidDefinition(_) => "invalid_definition",
            Reject::Capacity(_) => "capacity",
            Reject::AccountLimit(..) => "account_limit",
        }
    }
}
