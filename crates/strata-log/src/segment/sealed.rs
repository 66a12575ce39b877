//! A sealed segment's files for copying elsewhere (the remote tier): second
//! descriptors of the segment's own open files. They are of the segment's
//! generation by construction, whatever happens to the names afterwards (a
//! cleaning renames a cleaned segment over them, retention unlinks them),
//! and they stay readable until dropped.

use std::fs::File;

use crate::error::LogError;

use super::Segment;

impl Segment {
    /// Duplicates the descriptors of the `.log`, `.index` and `.timeindex`
    /// files. Only positioned reads may be made through them (they share the
    /// file offset with the segment's, which uses none).
    pub(crate) fn clone_files(&self) -> Result<[File; 3], LogError> {
        let log = self.file.try_clone().map_err(LogError::io(
            "duplicating the descriptor of",
            &self.log_path,
        ))?;
        let oi = &self.offset_index;
        let index = oi
            .clone_file()
            .map_err(LogError::io("duplicating the descriptor of", oi.path()))?;
        let ti = &self.time_index;
        let timeindex = ti
            .clone_file()
            .map_err(LogError::io("duplicating the descriptor of", ti.path()))?;
        Ok([log, index, timeindex])
    }
}
