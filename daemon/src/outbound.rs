//! The outbound liquidation stream: the gateway crate's [`Publisher`]
//! (sequencing, packing, heartbeats, re-request answers) on a socket the
//! daemon owns, fed by the pipeline's journaled outputs.
//!
//! The daemon keeps the publisher out of the `feed_gateway::Gateway`
//! because it publishes from inside the gateway's event callback: when the
//! input ring is full, the pipeline drains (journals and publishes) engine
//! outputs while the gateway is still borrowed by its `poll`.
//!
//! The outbound MoldUDP64 sequence IS the output journal's sequence: every
//! output record is one message (a liquidation has at most 64 legs — one
//! per open position, `positions_per_account_max ≤ 64` — so one `L`).
//! Re-requests are answered from a ring of recent messages and, further
//! back, from the journals ([`JournalRetention`]): nothing journaled is
//! ever unavailable.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;

use engine::Seq;
use feed_gateway::wire::{
    encode_halt, encode_liquidation_part, encode_status, Origin, ReRequest, Session,
    OUTBOUND_BYTES_MAX,
};
use feed_gateway::{
    net::{system_now_ns, udp_socket},
    PublishError, Publisher, PublisherConfig, PublisherCounters, Retention, RingRetention,
};
use journal::{InputReader, OutputBody, OutputReader};

use crate::datadir::{input_dir, output_dir};
use crate::pipeline::{Outbound, OutboundBody, Publish};

/// Recent outbound messages kept in memory for re-requests (older ones are
/// read back from the journals).
pub const RETAINED_MESSAGES: usize = 8192;

/// Re-request answers: recent messages from memory, older ones re-encoded
/// from the output journal (and the input journal for their origin).
pub struct JournalRetention {
    recent: RingRetention,
    data_dir: PathBuf,
    /// Messages answered from the journals.
    pub journal_fetches: u64,
}

impl JournalRetention {
    pub fn new(data_dir: PathBuf) -> JournalRetention {
        JournalRetention {
            recent: RingRetention::new(RETAINED_MESSAGES, OUTBOUND_BYTES_MAX),
            data_dir,
            journal_fetches: 0,
        }
    }

    /// Encodes output record `seq` from the journals (slow path: opens the
    /// readers, walks to the record).
    fn fetch_from_journal(&mut self, seq: u64, out: &mut [u8]) -> Option<usize> {
        let outputs = OutputReader::open(output_dir(&self.data_dir)).ok()?;
        let record = outputs.iter_from(Seq(seq)).next()?.ok()?;
        if record.seq != Seq(seq) {
            return None;
        }
        let record = record.to_owned();
        let origin = || -> Option<Origin> {
            let inputs = InputReader::open(input_dir(&self.data_dir)).ok()?;
            let input = inputs.iter_from(record.input_seq).next()?.ok()?;
            let archived = input.input();
            Some(Origin {
                stream: archived.src_stream.to_native(),
                seq: archived.src_seq.to_native(),
            })
        };
        let len = match &record.output {
            OutputBody::Halt(halt) => {
                let bytes = encode_halt(halt, origin()?);
                out.get_mut(..bytes.len())?.copy_from_slice(&bytes);
                bytes.len()
            }
            OutputBody::Liquidation { liquidation, legs } => {
                encode_liquidation_part(liquidation, legs, origin()?, 0, out)
                    .ok()?
                    .0
            }
            OutputBody::Status(status) => {
                let bytes = encode_status(status);
                out.get_mut(..bytes.len())?.copy_from_slice(&bytes);
                bytes.len()
            }
        };
        self.journal_fetches += 1;
        Some(len)
    }
}

impl Retention for JournalRetention {
    fn retain(&mut self, seq: u64, message: &[u8]) {
        self.recent.retain(seq, message);
    }

    fn fetch(&mut self, seq: u64, out: &mut [u8]) -> Option<usize> {
        self.recent
            .fetch(seq, out)
            .or_else(|| self.fetch_from_journal(seq, out))
    }
}

/// How the outbound side is set up.
#[derive(Clone, Debug)]
pub struct OutboundSettings {
    pub session: Session,
    pub bind: SocketAddr,
    pub destinations: Vec<SocketAddr>,
    /// Where re-requests arrive (None: the sending socket).
    pub retransmit_listen: Option<SocketAddr>,
    pub heartbeat_interval_ns: u64,
    pub datagram_bytes_max: usize,
}

/// The publisher and its sockets.
pub struct OutboundSide {
    socket: UdpSocket,
    rerequests: Option<UdpSocket>,
    destinations: Vec<SocketAddr>,
    publisher: Publisher<JournalRetention>,
    buffer: [u8; 64],
    /// Datagrams the socket refused.
    pub send_errors: u64,
    /// Datagrams on the re-request socket that are not re-requests.
    pub bad_rerequests: u64,
    /// Outputs the publisher refused (cannot happen with ≤ 64 legs; counted).
    pub publish_errors: u64,
}

impl OutboundSide {
    /// Opens the sockets.
    ///
    /// # Errors
    /// A socket cannot be bound; the publisher settings are invalid.
    pub fn new(settings: &OutboundSettings, data_dir: PathBuf) -> io::Result<OutboundSide> {
        let config = PublisherConfig {
            session: settings.session,
            datagram_bytes_max: settings.datagram_bytes_max,
            message_bytes_max: OUTBOUND_BYTES_MAX,
            heartbeat_interval_ns: settings.heartbeat_interval_ns,
        };
        let publisher = Publisher::new(config, JournalRetention::new(data_dir))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        let socket = udp_socket(settings.bind, None, None, None)?;
        let rerequests = match settings.retransmit_listen {
            Some(addr) => Some(udp_socket(addr, None, None, None)?),
            None => None,
        };
        Ok(OutboundSide {
            socket,
            rerequests,
            destinations: settings.destinations.clone(),
            publisher,
            buffer: [0; 64],
            send_errors: 0,
            bad_rerequests: 0,
            publish_errors: 0,
        })
    }

    /// Continues the outbound sequence at `next_seq` (the output journal's);
    /// anything pending is sent first.
    pub fn resume(&mut self, next_seq: Seq) {
        if self.publisher.next_seq() != next_seq.0 {
            self.flush();
            self.publisher.resume(next_seq.0);
        }
    }

    pub fn next_seq(&self) -> u64 {
        self.publisher.next_seq()
    }

    pub fn counters(&self) -> &PublisherCounters {
        self.publisher.counters()
    }

    pub fn journal_fetches(&self) -> u64 {
        self.publisher.retention().journal_fetches
    }

    /// Where keepers send re-requests.
    pub fn rerequest_addr(&self) -> io::Result<SocketAddr> {
        self.rerequests
            .as_ref()
            .unwrap_or(&self.socket)
            .local_addr()
    }

    fn sender<'a>(
        socket: &'a UdpSocket,
        destinations: &'a [SocketAddr],
        errors: &'a mut u64,
    ) -> impl FnMut(&[u8]) + 'a {
        move |datagram: &[u8]| {
            for destination in destinations {
                if socket.send_to(datagram, destination).is_err() {
                    *errors += 1;
                }
            }
        }
    }

    /// Sends the pending datagram now (after a batch of outputs).
    pub fn flush(&mut self) {
        let mut send = Self::sender(&self.socket, &self.destinations, &mut self.send_errors);
        self.publisher.flush(system_now_ns(), &mut send);
    }

    /// Heartbeat when idle; answers pending re-requests.
    pub fn tick(&mut self) {
        {
            let mut send = Self::sender(&self.socket, &self.destinations, &mut self.send_errors);
            self.publisher.tick(system_now_ns(), &mut send);
        }
        self.answer_rerequests();
    }

    fn answer_rerequests(&mut self) {
        let socket = self.rerequests.as_ref().unwrap_or(&self.socket);
        loop {
            let (len, source) = match socket.recv_from(&mut self.buffer) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return,
            };
            let Ok(request) = ReRequest::decode(&self.buffer[..len]) else {
                self.bad_rerequests += 1;
                continue;
            };
            let errors = &mut self.send_errors;
            self.publisher.answer(&request, &mut |datagram: &[u8]| {
                if socket.send_to(datagram, source).is_err() {
                    *errors += 1;
                }
            });
        }
    }

    fn push(&mut self, message: &Outbound<'_>) -> Result<(), PublishError> {
        // Only before the first message of a run: the journal decides.
        self.resume(message.seq);
        let origin = Origin {
            stream: message.src_stream,
            seq: message.src_seq,
        };
        let now = system_now_ns();
        let mut send = Self::sender(&self.socket, &self.destinations, &mut self.send_errors);
        match message.body {
            OutboundBody::Halt(halt) => {
                self.publisher.push_halt(halt, origin, now, &mut send)?;
            }
            OutboundBody::Liquidation { liquidation, legs } => {
                self.publisher
                    .push_liquidation(liquidation, legs, origin, now, &mut send)?;
            }
            OutboundBody::Status(status) => {
                self.publisher.push_status(status, now, &mut send)?;
            }
        }
        Ok(())
    }
}

impl Publish for OutboundSide {
    fn publish(&mut self, message: &Outbound<'_>) {
        if self.push(message).is_err() {
            self.publish_errors += 1;
        }
    }
}
