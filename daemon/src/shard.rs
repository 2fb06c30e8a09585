//! Account shards: `shard = "k/n"` owns the accounts with `id mod n = k`.
//!
//! Every shard journals every input event (the journal is what arrived, and
//! each stream's sequence stays dense); only the engine input is filtered:
//! a Fill or BalanceChange of another shard's account is skipped (counted).
//! Market data, admin events and Funding apply on every shard (funding pays
//! every position the shard holds). The union of the shards' outputs per
//! input event equals the unsharded daemon's: an account's decisions depend
//! only on its own events and the shared market and definitions; halts are
//! emitted by every shard alike.

use std::fmt;

use engine::Event;

/// `k/n`: this process owns the accounts with `id mod n = k`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole book.
    pub const ALL: Shard = Shard { index: 0, count: 1 };

    /// Parses `"k/n"` with `n ≥ 1` and `k < n`.
    ///
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(text: &str) -> Result<Shard, String> {
        let (k, n) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not of the form \"k/n\""))?;
        let index: u64 = k
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: k is not a non-negative integer"))?;
        let count: u64 = n
            .trim()
            .parse()
            .map_err(|_| format!("{text:?}: n is not a positive integer"))?;
        if count == 0 {
            return Err(format!("{text:?}: n must be at least 1"));
        }
        if index >= count {
            return Err(format!("{text:?}: k must be less than n"));
        }
        Ok(Shard { index, count })
    }

    /// Whether the engine of this shard applies `event`.
    #[inline]
    pub fn applies(&self, event: &Event) -> bool {
        match event {
            Event::Fill(f) => f.account.0 % self.count == self.index,
            Event::Balance(b) => b.account.0 % self.count == self.index,
            _ => true,
        }
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(Shard::parse("1/2"), Ok(Shard { index: 1, count: 2 }));
        assert_eq!(Shard::parse("0/1"), Ok(Shard::ALL));
        for bad in ["", "1", "2/2", "0/0", "-1/2", "a/b", "1/2/3"] {
            assert!(Shard::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
    }
}
