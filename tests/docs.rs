//! The message sizes in docs/PROTOCOL.md are the codec's.

use feed_gateway::wire::{
    ASSET_BYTES, BALANCE_BYTES, FILL_BYTES, FUNDING_BYTES, HALT_BYTES, INDEX_BYTES,
    INSTRUMENT_BASE_BYTES, LEG_BYTES, LIQUIDATION_BASE_BYTES, MARK_BYTES, PARAMS_BYTES, RISK_BYTES,
    STATUS_BYTES, TIER_BYTES,
};

/// `(type letter, size column)` of every message table row.
fn size_rows(doc: &str) -> Vec<(char, String)> {
    doc.lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            // "", type, name, fields, bytes, ""
            let letter = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            let mut chars = letter.chars();
            let (Some(c), None) = (chars.next(), chars.next()) else {
                return None;
            };
            Some((c, cells.get(cells.len().checked_sub(2)?)?.to_string()))
        })
        .collect()
}

#[test]
fn the_message_sizes_table_matches_the_codec() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md");
    let expected = [
        ('M', MARK_BYTES.to_string()),
        ('X', INDEX_BYTES.to_string()),
        ('F', FILL_BYTES.to_string()),
        ('B', BALANCE_BYTES.to_string()),
        ('N', FUNDING_BYTES.to_string()),
        ('A', ASSET_BYTES.to_string()),
        ('I', format!("{INSTRUMENT_BASE_BYTES} + {TIER_BYTES} n")),
        ('G', RISK_BYTES.to_string()),
        ('P', PARAMS_BYTES.to_string()),
        ('L', format!("{LIQUIDATION_BASE_BYTES} + {LEG_BYTES} n")),
        ('H', HALT_BYTES.to_string()),
        ('S', STATUS_BYTES.to_string()),
    ];
    let rows = size_rows(&doc);
    assert_eq!(rows.len(), expected.len(), "{rows:?}");
    for (letter, size) in expected {
        let found = rows
            .iter()
            .find(|(c, _)| *c == letter)
            .unwrap_or_else(|| panic!("no row for `{letter}`"));
        assert_eq!(found.1, size, "`{letter}`");
    }
}

/// The README's test command is the one CI runs, and its first command is
/// the demo.
#[test]
fn the_readme_commands_are_the_ci_ones() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README.md");
    let ci = std::fs::read_to_string(format!("{root}/.ci/run")).expect(".ci/run");
    let block = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a first sh block");
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        [
            "cargo run --release -- demo",
            "cargo test --workspace --locked"
        ]
    );
    assert!(ci.lines().any(|l| l.trim() == commands[1]), "{ci}");
}
