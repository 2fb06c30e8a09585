//! Sends one outbound datagram (an `L` with two legs, an `H`, an `S`) and a
//! heartbeat to ADDR — for checking the framing with a dissector:
//!
//! ```text
//! tshark -i lo -f 'udp port 7200' -d udp.port==7200,moldudp64 -V &
//! cargo run -p feed-gateway --example send_outbound -- 127.0.0.1:7200
//! ```

use std::net::UdpSocket;

use engine::{AccountId, Dec8, Halt, HaltReason, InstrumentId, Leg, Liquidation, Seq, UnixNanos};
use feed_gateway::wire::{Origin, Session};
use feed_gateway::{NoRetention, Publisher, PublisherConfig};
use journal::{SourceStream, Status};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let to = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7200".to_owned());
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let mut publisher = Publisher::new(
        PublisherConfig::outbound(Session::new("LIQD")?),
        NoRetention,
    )?;
    let origin = Origin {
        stream: SourceStream::MarketData,
        seq: 77,
    };
    let liquidation = Liquidation {
        ts: UnixNanos(9),
        seq: Seq(12),
        account: AccountId(7),
        equity: Dec8::parse("120.5")?,
        maint_margin: Dec8::parse("130")?,
        partial: true,
        bankrupt: false,
        escalation: false,
    };
    let legs = [
        Leg {
            instrument: InstrumentId(1),
            qty: Dec8::parse("-0.2")?,
            limit_price: Dec8::parse("63000.1")?,
        },
        Leg {
            instrument: InstrumentId(2),
            qty: Dec8::parse("3")?,
            limit_price: Dec8::parse("2950")?,
        },
    ];
    let halt = Halt {
        ts: UnixNanos(9),
        seq: Seq(13),
        instrument: InstrumentId(1),
        reason: HaltReason::Stale,
        on: true,
    };
    let status = Status {
        ts: UnixNanos(10),
        seq: Seq(13),
        accounts: 3,
        liquidating: 1,
        halted: 1,
    };
    let mut error = None;
    let mut send = |d: &[u8]| {
        if let Err(e) = socket.send_to(d, &to) {
            error.get_or_insert(e);
        }
    };
    publisher.push_liquidation(&liquidation, &legs, origin, 0, &mut send)?;
    publisher.push_halt(&halt, origin, 0, &mut send)?;
    publisher.push_status(&status, 0, &mut send)?;
    publisher.flush(0, &mut send);
    publisher.tick(u64::MAX, &mut send);
    match error {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
