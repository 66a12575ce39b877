//! SCRAM authentications per second on one core: the broker's side of a whole exchange
//! (client-first -> server-first, client-final -> verify proof, server-final), with the
//! client's messages prepared beforehand, for SCRAM-SHA-256 and SCRAM-SHA-512. The broker
//! never runs PBKDF2 (it stores StoredKey and ServerKey), so its cost does not depend on the
//! iteration count; the client's does, and `scram_client_*` measures it for comparison.
//!
//! `cargo bench --bench scram`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata::sasl::scram::{credential, ScramClient, ScramServer, ServerStep};
use strata_controller::ScramMechanism;

const SERVER_NONCE: &str = "c2VydmVyLW5vbmNlLWZvci1iZW5jaA==";

fn prepared(m: ScramMechanism) -> (Vec<u8>, Vec<u8>, strata_controller::ScramCredential) {
    let stored = credential(m, "bench-secret", b"0123456789abcdef", 4096);
    let mut client = ScramClient::new(m, "bench", "bench-secret", "Y2xpZW50LW5vbmNl".into());
    let first = client.client_first();
    let mut server = ScramServer::new(m, SERVER_NONCE.into());
    let ServerStep::Challenge(server_first) =
        server.step(&first, |_| Some(stored.clone())).unwrap()
    else {
        panic!("expected a challenge");
    };
    let fin = client.client_final(&server_first).unwrap();
    (first, fin, stored)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("scram");
    g.throughput(Throughput::Elements(1));
    for m in ScramMechanism::ALL {
        let (first, fin, stored) = prepared(m);
        g.bench_function(format!("scram_server_auth_{}", m.name()), |b| {
            b.iter(|| {
                let mut server = ScramServer::new(m, SERVER_NONCE.into());
                server.step(&first, |_| Some(stored.clone())).unwrap();
                match server.step(&fin, |_| None).unwrap() {
                    ServerStep::Done { .. } => {}
                    other => panic!("{other:?}"),
                }
            })
        });
        g.bench_function(format!("scram_client_{}_4096_iterations", m.name()), |b| {
            b.iter(|| prepared(m))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
