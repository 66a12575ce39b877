//! openraft's storage conformance suite against the file-backed log store and state machine.

use openraft::testing::StoreBuilder;
use openraft::testing::Suite;
use openraft::StorageError;
use strata_controller::LogStore;
use strata_controller::StateMachine;
use strata_controller::TypeConfig;
use tempfile::TempDir;

struct FileStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for FileStoreBuilder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("create temp dir");
        let log = LogStore::open(dir.path()).expect("open log store");
        let sm = StateMachine::open(dir.path()).expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(FileStoreBuilder) {
        panic!("storage suite failed: {e}");
    }
}
