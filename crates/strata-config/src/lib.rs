//! Strata configuration: placeholder, owned by the config work.
