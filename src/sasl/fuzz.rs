//! Entry points for the SASL fuzz targets (`fuzz/fuzz_targets/sasl_*.rs`): each feeds
//! arbitrary bytes to the decoders and state machines that read client input before the
//! client is authenticated. They must return errors, never panic. The same functions run
//! under proptest in this module's tests, so they stay exercised where `cargo fuzz` is
//! not installed.

use strata_controller::ScramMechanism;

use super::scram::{self, ScramServer, ServerStep};
use super::{oauth, plain};

/// PLAIN and OAUTHBEARER messages, and Kafka's JAAS lines.
pub fn plain_and_oauth(data: &[u8]) {
    if let Ok(m) = plain::decode(data) {
        let _ = plain::verify(&m, Some("password"));
    }
    let _ = oauth::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(module) = strata_config::jaas::parse_jaas(text) {
            let _ = strata_config::jaas::plain_users(&module);
        }
    }
}

/// A SCRAM exchange with attacker-chosen messages: the first byte picks the mechanism,
/// the rest is split at the first NUL into client-first and client-final.
pub fn scram_exchange(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let m = if pick % 2 == 0 {
        ScramMechanism::Sha256
    } else {
        ScramMechanism::Sha512
    };
    let (first, fin) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let _ = scram::decode_client_first(m, first);
    let _ = scram::decode_client_final(m, fin);
    let mut server = ScramServer::new(m, "fuzznonce".into());
    // The minimum iteration count keeps each run fast.
    let credential = scram::credential(m, "pw", b"salt", ScramMechanism::MIN_ITERATIONS);
    if let Ok(ServerStep::Challenge(_)) = server.step(first, |_| Some(credential)) {
        let _ = server.step(fin, |_| None);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn sasl_decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..256)) {
            super::plain_and_oauth(&data);
            super::scram_exchange(&data);
        }

        #[test]
        fn scram_like_text_never_panics(first in "n,(a=[a-z=,]{0,6})?,n=[a-z=2CD]{0,8},r=[ -~]{0,12}", fin in "c=[A-Za-z0-9+/=]{0,8},r=[ -~]{0,20}(,p=[A-Za-z0-9+/=]{0,60})?") {
            let data = [&[0u8][..], first.as_bytes(), &[0], fin.as_bytes()].concat();
            super::scram_exchange(&data);
        }
    }
}
