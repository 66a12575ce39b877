//! Strata log: placeholder, owned by the log work.
