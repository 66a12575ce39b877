//! Strata controller: placeholder, owned by the controller work.
