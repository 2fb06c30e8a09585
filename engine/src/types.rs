//! Identifiers, decimals and the event and output types of PROTOCOL.md.
//!
//! Inputs carry [`Fixed8`] (the wire's i64 × 10⁻⁸); the engine computes in
//! [`Dec8`] (i128 × 10⁻⁸), wide enough for sums of products of inputs.

use core::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $inner:ty) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash,
            rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
        )]
        #[rkyv(derive(Debug, PartialEq, Eq, PartialOrd, Ord))]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_type!(
    /// The venue's account id (any u64, 0 and 2⁶⁴−1 included).
    AccountId, u64
);
id_type!(
    /// An instrument (linear perpetual) id.
    InstrumentId, u32
);
id_type!(
    /// A collateral asset id; asset 0 is the quote asset.
    AssetId, u32
);
id_type!(
    /// Journal sequence number of an input event (1-based).
    Seq, u64
);
id_type!(
    /// Event time: nanoseconds since the Unix epoch, stamped by the producer.
    UnixNanos, u64
);

/// The quote asset: price 1, both weights 1.
pub const QUOTE_ASSET: AssetId = AssetId(0);

/// Decimal places of every decimal on the wire and in the engine.
pub const SCALE: u32 = 8;
/// 10⁸: one unit in mantissa terms.
pub const ONE_MANTISSA: i64 = 100_000_000;

/// A wire decimal: i64 mantissa × 10⁻⁸. `i64::MIN` is invalid on the wire
/// and never constructed by the decoders.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Fixed8(pub i64);

impl Fixed8 {
    pub const ZERO: Fixed8 = Fixed8(0);
    pub const ONE: Fixed8 = Fixed8(ONE_MANTISSA);

    /// Widens to the engine's decimal.
    pub const fn dec(self) -> Dec8 {
        Dec8(self.0 as i128)
    }

    /// Parses the strict PROTOCOL.md §5 form `-?[0-9]+(\.[0-9]{1,8})?`,
    /// within the Fixed8 range (−2⁶³ excluded).
    ///
    /// # Errors
    /// A message saying what is wrong with the text.
    pub fn parse(text: &str) -> Result<Fixed8, &'static str> {
        let mantissa = Dec8::parse(text)?.0;
        if mantissa <= i64::MIN as i128 || mantissa > i64::MAX as i128 {
            return Err("decimal outside the Fixed8 range");
        }
        Ok(Fixed8(mantissa as i64))
    }
}

impl fmt::Display for Fixed8 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.dec(), f)
    }
}

/// The engine's exact decimal: i128 mantissa × 10⁻⁸.
///
/// Every figure of MARGIN.md that is not a variance is a multiple of 10⁻⁸,
/// so this type holds each of them exactly; arithmetic on it is checked.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Dec8(pub i128);

impl Dec8 {
    pub const ZERO: Dec8 = Dec8(0);
    pub const ONE: Dec8 = Dec8(ONE_MANTISSA as i128);
    /// The smallest positive value, 10⁻⁸.
    pub const EPSILON: Dec8 = Dec8(1);

    pub const fn from_int(units: i64) -> Dec8 {
        Dec8(units as i128 * ONE_MANTISSA as i128)
    }

    pub const fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    pub const fn signum(self) -> i128 {
        self.0.signum()
    }

    pub fn checked_add(self, rhs: Dec8) -> Option<Dec8> {
        self.0.checked_add(rhs.0).map(Dec8)
    }

    pub fn checked_sub(self, rhs: Dec8) -> Option<Dec8> {
        self.0.checked_sub(rhs.0).map(Dec8)
    }

    pub fn checked_neg(self) -> Option<Dec8> {
        self.0.checked_neg().map(Dec8)
    }

    pub fn checked_abs(self) -> Option<Dec8> {
        self.0.checked_abs().map(Dec8)
    }

    /// The value as a wire decimal, if it fits (−2⁶³ excluded).
    pub fn to_fixed8(self) -> Option<Fixed8> {
        if self.0 <= i64::MIN as i128 || self.0 > i64::MAX as i128 {
            None
        } else {
            Some(Fixed8(self.0 as i64))
        }
    }

    /// Parses `-?[0-9]+(\.[0-9]{1,8})?` exactly (no exponent, no `+`).
    ///
    /// # Errors
    /// A message saying what is wrong with the text.
    pub fn parse(text: &str) -> Result<Dec8, &'static str> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (digits, None),
        };
        if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err("malformed decimal: expected -?[0-9]+(.[0-9]{1,8})?");
        }
        let frac = frac_part.unwrap_or("");
        if frac_part.is_some() && frac.is_empty() || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err("malformed decimal: expected -?[0-9]+(.[0-9]{1,8})?");
        }
        if frac.len() > SCALE as usize {
            return Err("decimal has more than 8 places");
        }
        let mut mantissa: i128 = 0;
        for b in int_part.bytes() {
            mantissa = mantissa
                .checked_mul(10)
                .and_then(|m| m.checked_add(i128::from(b - b'0')))
                .filter(|m| *m <= i128::MAX / 1_000_000_000)
                .ok_or("decimal out of range")?;
        }
        mantissa *= i128::from(ONE_MANTISSA);
        let mut place = i128::from(ONE_MANTISSA);
        for b in frac.bytes() {
            place /= 10;
            mantissa += i128::from(b - b'0') * place;
        }
        Ok(Dec8(if negative { -mantissa } else { mantissa }))
    }
}

impl fmt::Display for Dec8 {
    /// Plain decimal, no exponent, trailing zeros trimmed: `-0.2`, `90`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let one = ONE_MANTISSA as u128;
        let abs = self.0.unsigned_abs();
        let (int_part, mut frac) = (abs / one, abs % one);
        let sign = if self.0 < 0 { "-" } else { "" };
        if frac == 0 {
            return write!(f, "{sign}{int_part}");
        }
        let mut width = SCALE as usize;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        write!(f, "{sign}{int_part}.{frac:0width$}")
    }
}

/// Printable ASCII symbol, left-aligned and space padded to 16 bytes.
#[derive(
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Symbol(pub [u8; 16]);

impl Symbol {
    /// # Errors
    /// Empty, longer than 16 bytes, or not printable ASCII.
    pub fn new(text: &str) -> Result<Symbol, &'static str> {
        let trimmed = text.trim_end_matches(' ');
        if trimmed.is_empty() {
            return Err("symbol is empty");
        }
        if text.len() > 16 {
            return Err("symbol longer than 16 characters");
        }
        if !text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err("symbol is not printable ASCII");
        }
        let mut bytes = [b' '; 16];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(Symbol(bytes))
    }

    /// The symbol without its padding.
    pub fn as_str(&self) -> &str {
        let text = core::str::from_utf8(&self.0).unwrap_or("");
        text.trim_end_matches(' ')
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Symbol({:?})", self.as_str())
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One margin tier: from `notional_floor` up, `mmr` and `imr` apply.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Tier {
    pub notional_floor: Fixed8,
    pub mmr: Fixed8,
    pub imr: Fixed8,
}

/// Most tiers an instrument may have (PROTOCOL.md §3).
pub const TIERS_MAX: usize = 16;

/// A tier table as received: `count` may be outside 1..=16 (a JSONL line
/// may list any number of tiers; the engine rejects such a definition), and
/// only the first 16 are kept.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Tiers {
    pub count: u8,
    pub tiers: [Tier; TIERS_MAX],
}

impl Tiers {
    /// From a list; a list longer than 16 keeps its length (saturated at
    /// 255) so the engine can reject it.
    pub fn from_slice(list: &[Tier]) -> Tiers {
        let mut tiers = [Tier::default(); TIERS_MAX];
        let kept = list.len().min(TIERS_MAX);
        tiers[..kept].copy_from_slice(&list[..kept]);
        Tiers {
            count: u8::try_from(list.len()).unwrap_or(u8::MAX),
            tiers,
        }
    }

    /// The tiers actually held (at most 16).
    pub fn as_slice(&self) -> &[Tier] {
        &self.tiers[..usize::from(self.count).min(TIERS_MAX)]
    }
}

/// Informational kind of a balance change.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum BalanceKind {
    Deposit = 1,
    Withdrawal = 2,
    Transfer = 3,
    Adjustment = 4,
}

impl BalanceKind {
    pub fn from_code(code: u8) -> Option<BalanceKind> {
        match code {
            1 => Some(BalanceKind::Deposit),
            2 => Some(BalanceKind::Withdrawal),
            3 => Some(BalanceKind::Transfer),
            4 => Some(BalanceKind::Adjustment),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BalanceKind::Deposit => "deposit",
            BalanceKind::Withdrawal => "withdrawal",
            BalanceKind::Transfer => "transfer",
            BalanceKind::Adjustment => "adjustment",
        }
    }

    pub fn from_name(name: &str) -> Option<BalanceKind> {
        [
            BalanceKind::Deposit,
            BalanceKind::Withdrawal,
            BalanceKind::Transfer,
            BalanceKind::Adjustment,
        ]
        .into_iter()
        .find(|k| k.name() == name)
    }
}

macro_rules! event_struct {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash,
            rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
        )]
        #[rkyv(derive(Debug, PartialEq, Eq))]
        pub struct $name {
            pub ts: UnixNanos,
            $($(#[$fdoc])* pub $field: $ty,)*
        }
    };
}

event_struct!(
    /// `A`: define or replace a collateral asset.
    AssetDef {
        asset: AssetId,
        symbol: Symbol,
        asset_weight: Fixed8,
        liability_weight: Fixed8,
    }
);
event_struct!(
    /// `I`: define or replace an instrument.
    InstrumentDef {
        instrument: InstrumentId,
        symbol: Symbol,
        multiplier: Fixed8,
        liquidation_fee: Fixed8,
        tiers: Tiers,
    }
);
event_struct!(
    /// `P`: the engine's global parameters (MARGIN.md §7).
    EngineParams {
        partial_liquidation: bool,
        liquidation_cooldown_ns: u64,
        warn_ratio: Fixed8,
    }
);
event_struct!(
    /// `G`: an instrument's volatility and price-guard parameters.
    RiskParams {
        instrument: InstrumentId,
        vol_lambda: Fixed8,
        vol_ref: Fixed8,
        vol_max_factor: Fixed8,
        max_staleness_ns: u64,
        max_jump: Fixed8,
    }
);
event_struct!(
    /// `X`: the price of a collateral asset in quote.
    IndexPrice { asset: AssetId, price: Fixed8 }
);
event_struct!(
    /// `M`: an instrument's mark price.
    MarkPrice { instrument: InstrumentId, price: Fixed8 }
);
event_struct!(
    /// `F`: a fill (signed qty: + buy, − sell).
    Fill {
        account: AccountId,
        instrument: InstrumentId,
        qty: Fixed8,
        price: Fixed8,
        fee: Fixed8,
        fill_id: u64,
    }
);
event_struct!(
    /// `B`: a balance change; the amount's sign is authoritative.
    BalanceChange {
        account: AccountId,
        asset: AssetId,
        amount: Fixed8,
        kind: BalanceKind,
        ref_id: u64,
    }
);
event_struct!(
    /// `N`: a funding payment, `rate × V` per holder (longs pay when > 0).
    Funding { instrument: InstrumentId, rate: Fixed8 }
);

/// One input event. Fixed-size and `Copy` (an InstrumentDef carries its 16
/// tier slots inline) so rings and journals move it without allocating.
#[allow(clippy::large_enum_variant)]
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub enum Event {
    AssetDef(AssetDef),
    InstrumentDef(InstrumentDef),
    Params(EngineParams),
    Risk(RiskParams),
    Index(IndexPrice),
    Mark(MarkPrice),
    Fill(Fill),
    Balance(BalanceChange),
    Funding(Funding),
}

impl Event {
    /// The producer's timestamp.
    pub fn ts(&self) -> UnixNanos {
        match self {
            Event::AssetDef(e) => e.ts,
            Event::InstrumentDef(e) => e.ts,
            Event::Params(e) => e.ts,
            Event::Risk(e) => e.ts,
            Event::Index(e) => e.ts,
            Event::Mark(e) => e.ts,
            Event::Fill(e) => e.ts,
            Event::Balance(e) => e.ts,
            Event::Funding(e) => e.ts,
        }
    }

    /// The JSONL `type` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Event::AssetDef(_) => "asset",
            Event::InstrumentDef(_) => "instrument",
            Event::Params(_) => "params",
            Event::Risk(_) => "risk",
            Event::Index(_) => "index",
            Event::Mark(_) => "mark",
            Event::Fill(_) => "fill",
            Event::Balance(_) => "balance",
            Event::Funding(_) => "funding",
        }
    }
}

/// Why an instrument is halted (MARGIN.md §6).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    rkyv::Archive,
    rkyv::Serialize,
    rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
#[repr(u8)]
pub enum HaltReason {
    Stale = 1,
    Jump = 2,
}

impl HaltReason {
    pub fn name(self) -> &'static str {
        match self {
            HaltReason::Stale => "stale",
            HaltReason::Jump => "jump",
        }
    }

    pub fn from_name(name: &str) -> Option<HaltReason> {
        match name {
            "stale" => Some(HaltReason::Stale),
            "jump" => Some(HaltReason::Jump),
            _ => None,
        }
    }
}

/// A halt starting (`on`) or ending.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Halt {
    pub ts: UnixNanos,
    pub seq: Seq,
    pub instrument: InstrumentId,
    pub reason: HaltReason,
    pub on: bool,
}

/// One position to close: `qty` is the signed quantity to trade.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Leg {
    pub instrument: InstrumentId,
    pub qty: Dec8,
    pub limit_price: Dec8,
}

/// A liquidation decision, without its legs (those travel beside it).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize,
)]
#[rkyv(derive(Debug, PartialEq, Eq))]
pub struct Liquidation {
    pub ts: UnixNanos,
    pub seq: Seq,
    pub account: AccountId,
    pub equity: Dec8,
    pub maint_margin: Dec8,
    pub partial: bool,
    pub bankrupt: bool,
    pub escalation: bool,
}

/// Where the engine writes its decisions. Owned by the caller; the engine
/// calls it in output order (halts by instrument id, then liquidations by
/// account id) and keeps no reference to what it passed.
pub trait Sink {
    fn halt(&mut self, halt: &Halt);
    fn liquidation(&mut self, liquidation: &Liquidation, legs: &[Leg]);
}

/// An owned output, for tools and tests (allocates: not for the hot path).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    Halt(Halt),
    Liquidation(Liquidation, Vec<Leg>),
}

/// A sink that collects owned outputs.
#[derive(Debug, Default, Clone)]
pub struct VecSink {
    pub outputs: Vec<Output>,
}

impl Sink for VecSink {
    fn halt(&mut self, halt: &Halt) {
        self.outputs.push(Output::Halt(*halt));
    }

    fn liquidation(&mut self, liquidation: &Liquidation, legs: &[Leg]) {
        self.outputs
            .push(Output::Liquidation(*liquidation, legs.to_vec()));
    }
}

/// A sink that only counts (benchmarks, allocation tests).
#[derive(Debug, Default, Clone, Copy)]
pub struct CountingSink {
    pub halts: u64,
    pub liquidations: u64,
    pub legs: u64,
}

impl Sink for CountingSink {
    fn halt(&mut self, _halt: &Halt) {
        self.halts += 1;
    }

    fn liquidation(&mut self, _liquidation: &Liquidation, legs: &[Leg]) {
        self.liquidations += 1;
        self.legs += legs.len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_text_round_trips_and_is_strict() {
        for text in [
            "0",
            "-0.2",
            "65000.125",
            "90",
            "0.00000001",
            "-92233720368.54775807",
        ] {
            assert_eq!(Dec8::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Dec8::parse("1.50").unwrap().to_string(), "1.5");
        for bad in [
            "",
            "-",
            "+1",
            "1.",
            ".5",
            "1e5",
            "1.123456789",
            " 1",
            "1 ",
            "--1",
            "0x10",
        ] {
            assert!(Dec8::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(Fixed8::parse("92233720368.54775807").is_ok());
        assert!(Fixed8::parse("92233720368.54775808").is_err());
        assert!(
            Fixed8::parse("-92233720368.54775808").is_err(),
            "−2⁶³ is invalid"
        );
    }

    #[test]
    fn symbols_are_checked() {
        assert_eq!(Symbol::new("BTC-PERP").unwrap().as_str(), "BTC-PERP");
        assert!(Symbol::new("").is_err());
        assert!(Symbol::new("   ").is_err());
        assert!(Symbol::new("ABCDEFGHIJKLMNOPQ").is_err());
        assert!(Symbol::new("BTC\u{e9}").is_err());
        assert!(Symbol::new("A\tB").is_err());
    }
}
