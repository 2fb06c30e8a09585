//! Tests of the latency harness itself: an injected delay shows up in the
//! percentiles, a stalled receiver does not hide latency (no coordinated
//! omission), reports parse back, the scenario paths do what they say.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use daemon::config::Idle;

use liqd_bench::latency::pipeline::{self, Hook};
use liqd_bench::latency::{hgrm, svg, Report};
use liqd_bench::{Machine, Mix, Path};

/// One pipeline at a time: each has a polling engine thread, and this
/// host may have two cores.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

fn small(path: Path, rate: f64, events: u64) -> pipeline::Options {
    pipeline::Options {
        scenario: liqd_bench::Options {
            accounts: 300,
            instruments: 2,
            assets: 1,
            mix: Mix::MARKS_ONLY,
            path,
            ..liqd_bench::Options::default()
        },
        rate,
        events,
        warmup: 50,
        // One spinning engine thread at a time (the tests are serialized).
        engine_idle: Idle::Spin,
        ..pipeline::Options::default()
    }
}

/// Every 10th event's completion is held 3 ms on the gateway thread: at
/// least 10 % of the samples are ≥ 3 ms (p90 and above); when the host
/// let the generator keep its schedule (send lag p90 < 0.3 ms), the
/// median is below 3 ms. (On a starved host the open-loop generator
/// falls behind and every sample is late: that is the harness being
/// honest, not the delay.)
#[test]
fn an_injected_delay_shows_up_in_the_percentiles() {
    let delay = Duration::from_millis(3);
    let opts = pipeline::Options {
        hook: Hook {
            delay_every: 10,
            delay,
            ..Hook::default()
        },
        ..small(Path::Quiet, 1_000.0, 300)
    };
    let _serial = serial();
    let run = pipeline::run(&opts).expect("run");
    let h = run.histogram.as_ref().expect("histogram");
    let delay_ns = delay.as_nanos() as u64;
    assert_eq!(h.len(), 300);
    let at_least = h.count_between(delay_ns * 99 / 100, h.max().max(delay_ns));
    assert!(
        at_least >= 30,
        "{at_least} samples ≥ 3 ms: {:?}",
        run.latency
    );
    assert!(run.latency.p99 >= delay_ns * 99 / 100, "{:?}", run.latency);
    if run.send_lag.p90 < delay_ns / 10 {
        assert!(run.latency.p50 < delay_ns, "{:?}", run.latency);
    }
}

/// The gateway thread (receiver and generator) stops for 20 ms at one
/// event of a 10k/s schedule: the ~200 events scheduled during the stall
/// are measured from their intended send time, so about half of them carry
/// ≥ 10 ms. A closed-loop harness would report one slow sample.
#[test]
fn a_stalled_receiver_does_not_hide_latency() {
    let stall = Duration::from_millis(20);
    let opts = pipeline::Options {
        hook: Hook {
            stall_at: Some(500),
            stall,
            ..Hook::default()
        },
        ..small(Path::Quiet, 10_000.0, 2_000)
    };
    let _serial = serial();
    let run = pipeline::run(&opts).expect("run");
    let h = run.histogram.as_ref().expect("histogram");
    let ten_ms = 10_000_000;
    let slow = h.count_between(ten_ms, h.max().max(ten_ms));
    assert!(slow >= 95, "{slow} samples ≥ 10 ms: {:?}", run.latency);
    assert!(run.latency.max >= 19_000_000, "{:?}", run.latency);
    assert!(run.send_lag.max >= 19_000_000, "{:?}", run.send_lag);
    assert_eq!(run.latency.count, 2_000);
    if let Some(sched) = run.sched {
        // The stalled thread was asleep, neither running nor waiting.
        assert!(sched.wall_ms >= 20.0, "{sched:?}");
        assert!(sched.generator_run_ms < sched.wall_ms, "{sched:?}");
    }
}

/// JSON, `.hgrm` and SVG outputs of a real run parse back.
#[test]
fn reports_parse_back() {
    let _serial = serial();
    let run = pipeline::run(&pipeline::Options {
        compare_engine: true,
        ..small(Path::Walk, 20_000.0, 1_000)
    })
    .expect("run");
    assert!(run.engine_only.is_some_and(|e| e.count == 1_000));
    let h = run.histogram.clone().expect("histogram");
    let report = Report {
        bench: "pipeline".to_owned(),
        command: "test".to_owned(),
        machine: Machine::here(),
        load_average: liqd_bench::latency::load_average(),
        pinning: Default::default(),
        runs: vec![run],
        notes: vec![],
    };
    let json: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("json")).expect("valid JSON");
    let first = &json["runs"][0];
    assert_eq!(first["events"], 1_000);
    assert!(first["latency"]["p50"].as_u64().expect("p50") > 0);
    assert!(first["latency"]["p9999"].as_u64() <= first["latency"]["max"].as_u64());
    assert!(json["machine"]["cpu"].is_string());
    assert!(json["machine"]["kernel"].is_string());
    let parsed = hgrm::parse(&hgrm::write(&h)).expect("valid .hgrm");
    assert_eq!(parsed.total_count, 1_000);
    let svg = svg::plot("pipeline", &[("walk".to_owned(), &h)]);
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    assert!(report.table().contains("pipeline walk 20k/s"));
}

/// The flash crash halts instruments (jump guard) and liquidates; the
/// funding storm pays funding through the pipeline; nothing is rejected.
#[test]
fn flash_and_funding_paths_do_what_they_say() {
    let _serial = serial();
    let flash = pipeline::run(&pipeline::Options {
        scenario: liqd_bench::Options {
            accounts: 2_000,
            ..small(Path::Flash, 0.0, 0).scenario
        },
        ..small(Path::Flash, 200_000.0, 3_000)
    })
    .expect("flash");
    assert!(flash.halts >= 2, "halt on and off: {flash:?}");
    assert!(flash.liquidations > 0, "{flash:?}");
    assert_eq!(flash.rejected, 0);
    let funding = pipeline::run(&small(Path::Funding, 200_000.0, 10_500)).expect("funding");
    assert_eq!(funding.rejected, 0);
    assert_eq!(funding.events, 10_500);
}
